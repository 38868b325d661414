"""A PDF truncated on disk, its recorded digests updated to match, is never sent."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.documents.render import render_invoice
from sealbill.mail.config import SmtpConfig
from sealbill.mail.readback import parse_message
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.pdf_whole import pdf_problem
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.store.schema import delivery_envelopes, documents
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture
from tests.unit.documents.samples import domestic


def test_a_rendered_pdf_is_whole_and_its_truncations_are_not() -> None:
    pdf = render_invoice(domestic()).pdf
    assert pdf_problem(pdf) is None
    for cut in (len(pdf) - 2, len(pdf) - 40, len(pdf) // 2, 100):  # -1 is only the newline
        assert pdf_problem(pdf[:cut]) is not None
    assert pdf_problem(pdf[:len(pdf) // 2] + b"\n%%EOF\n") is not None  # a forged ending


def test_a_truncated_pdf_with_updated_digests_halts_the_run_and_reaches_nobody(
        sqlite_engine: Engine, tmp_path: Path,
        smtp_server: SmtpCapture) -> None:  # noqa: F811
    scenario = build_scenario(sqlite_engine, accounts=2, files_dir=tmp_path / "files")
    with sqlite_engine.begin() as conn:
        invoice_id, path = conn.execute(
            sa.select(documents.c.invoice_id, documents.c.path)
            .where(documents.c.kind == "pdf").order_by(documents.c.id)).first()
    data = Path(path).read_bytes()
    truncated = data[: len(data) - 300]
    os.chmod(path, 0o644)
    Path(path).write_bytes(truncated)
    digest = hashlib.sha256(truncated).hexdigest()
    with sqlite_engine.begin() as conn:  # "the stored digest was updated to match"
        conn.execute(sa.update(documents).where(documents.c.path == path)
                     .values(sha256=digest, size=len(truncated)))
    plan_run(sqlite_engine, scenario.org_id, scenario.run_id, actor="ops")
    with sqlite_engine.begin() as conn:
        planned = conn.execute(sa.select(delivery_envelopes.c.attachment_sha256).where(
            delivery_envelopes.c.invoice_id == invoice_id)).scalar_one()
    assert planned == digest  # the plan agrees with the damaged file: only the bytes can tell
    report = send_run(sqlite_engine, scenario.org_id, scenario.run_id,
                      transport=SmtpSender(SmtpConfig(port=smtp_server.port, timeout=5)),
                      signer=None, options=SendOptions(backoff_seconds=0.05))
    assert report.status == "halted"
    assert any("truncated" in str(v) or "startxref" in str(v) for v in report.violations)
    delivered = {m.message_id for m in smtp_server.accepted}
    assert all(truncated[-200:] not in m.data for m in smtp_server.accepted)
    assert len(delivered) <= 1  # at most the other invoice, whole


def _with_embedded_xml(pdf: bytes, xml: bytes) -> bytes:
    """The same PDF, whole, with its embedded Factur-X XML replaced (the file spec kept)."""
    import io

    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        [spec] = [s for name, s in doc.attachments.items() if name.endswith(".xml")]
        spec.obj.EF.F.write(xml)
        out = io.BytesIO()
        doc.save(out)
    return out.getvalue()


def test_a_whole_pdf_whose_xml_is_not_the_planned_one_halts_the_run_and_reaches_nobody(
        sqlite_engine: Engine, tmp_path: Path,
        smtp_server: SmtpCapture) -> None:  # noqa: F811
    from sealbill.pipeline.delivery.compose import extract_facturx_xml

    scenario = build_scenario(sqlite_engine, accounts=2, files_dir=tmp_path / "files")
    with sqlite_engine.begin() as conn:
        path = conn.execute(sa.select(documents.c.path).where(documents.c.kind == "pdf")
                            .order_by(documents.c.id)).scalars().first()
    data = Path(path).read_bytes()
    xml = extract_facturx_xml(data)
    # the same invoice number and buyer, one more line of text: only its digest differs
    forged = _with_embedded_xml(data, xml.replace(b"</rsm:CrossIndustryInvoice>",
                                                  b"<!-- paid --></rsm:CrossIndustryInvoice>"))
    assert pdf_problem(forged) is None and extract_facturx_xml(forged) != xml
    os.chmod(path, 0o644)
    Path(path).write_bytes(forged)
    with sqlite_engine.begin() as conn:  # the PDF's stored digest updated to match
        conn.execute(sa.update(documents).where(documents.c.path == path)
                     .values(sha256=hashlib.sha256(forged).hexdigest(), size=len(forged)))
    plan_run(sqlite_engine, scenario.org_id, scenario.run_id, actor="ops")
    report = send_run(sqlite_engine, scenario.org_id, scenario.run_id,
                      transport=SmtpSender(SmtpConfig(port=smtp_server.port, timeout=5)),
                      signer=None, options=SendOptions(backoff_seconds=0.05))
    assert report.status == "halted"
    assert any("embedded_xml" in str(v) for v in report.violations)
    sent_pdfs = [part.payload for m in smtp_server.accepted
                 for part in parse_message(m.data).parts
                 if part.content_type == "application/pdf"]
    assert forged not in sent_pdfs and len(sent_pdfs) <= 1  # at most the other invoice
