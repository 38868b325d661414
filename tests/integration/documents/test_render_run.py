"""render_run: the compiled template by default, Typst when forced, counted either way."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader
from sqlalchemy.engine import Engine

from sealbill.documents.embedded import embedded_xml
from sealbill.documents.render import FAST, TYPST
from sealbill.pipeline.billing.render import RenderCounts, render_run
from sealbill.store.schema import documents
from tests.support.scenario import build_scenario


def _pdfs(engine: Engine, org_id: int) -> list[bytes]:
    with engine.begin() as conn:
        paths = conn.execute(sa.select(documents.c.path).where(
            documents.c.organization_id == org_id, documents.c.kind == "pdf")).scalars()
        return [Path(p).read_bytes() for p in paths]


def test_a_run_renders_with_the_compiled_template_and_counts_it(any_engine: Engine,
                                                                 tmp_path: Path) -> None:
    scenario = build_scenario(any_engine, accounts=4, files_dir=tmp_path, render=False)
    counts = RenderCounts()
    rendered = render_run(any_engine, scenario.org_id, scenario.run_id, tmp_path / "files",
                          workers=1, counts=counts)
    assert rendered == 4 and counts.by_renderer == {FAST: 4} and counts.fallbacks == 0
    pdfs = _pdfs(any_engine, scenario.org_id)
    assert len(pdfs) == 4
    for pdf in pdfs:
        assert b"<rsm:CrossIndustryInvoice" in (embedded_xml(pdf) or b"")
        assert "Page 1/1" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_typst_can_be_forced_for_a_run(any_engine: Engine, tmp_path: Path) -> None:
    scenario = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    counts = RenderCounts()
    render_run(any_engine, scenario.org_id, scenario.run_id, tmp_path / "files", workers=1,
               counts=counts, renderer=TYPST)
    assert counts.by_renderer == {TYPST: 2}
    assert all(b"Typst" in pdf for pdf in _pdfs(any_engine, scenario.org_id))


def test_a_problem_stops_the_rendering_and_every_problem_is_listed(sqlite_engine: Engine,
                                                                   tmp_path: Path) -> None:
    """Each invoice is read once: an invoice that cannot become a valid document stops the
    rendering at its chunk; the rest is still checked and every problem named."""
    from sealbill.pipeline.billing import render as render_pipeline
    from sealbill.store.schema import invoices

    scenario = build_scenario(sqlite_engine, accounts=5, files_dir=tmp_path, render=False)
    ids = sorted(scenario.invoice_ids)
    with sqlite_engine.begin() as conn:
        for bad in (ids[2], ids[4]):  # no buyer address to send the e-invoice to (BR-FR-12)
            snapshot = dict(conn.execute(sa.select(invoices.c.buyer_snapshot).where(
                invoices.c.id == bad)).scalar_one())
            snapshot.update(email=None, electronic_address=None)
            conn.execute(sa.update(invoices).where(invoices.c.id == bad)
                         .values(buyer_snapshot=snapshot))
    original = render_pipeline.CHUNK
    render_pipeline.CHUNK = 2
    try:
        with pytest.raises(render_pipeline.RenderError) as raised:
            render_run(sqlite_engine, scenario.org_id, scenario.run_id, tmp_path / "files",
                       workers=1)
    finally:
        render_pipeline.CHUNK = original
    assert len([p for p in raised.value.problems if "BR-FR-12" in p]) == 2
    assert raised.value.rendered == 2 and "2 invoice(s)" in str(raised.value)
    with sqlite_engine.begin() as conn:
        rendered = set(conn.execute(sa.select(documents.c.invoice_id)).scalars())
    assert rendered == set(ids[:2])  # the first chunk; nothing from the one with a problem
    assert not [p for p in (tmp_path / "files").rglob(".tmp-*")]  # no staged file left


def test_a_pooled_run_stores_every_file_it_records_and_nothing_else(sqlite_engine: Engine,
                                                                    tmp_path: Path) -> None:
    scenario = build_scenario(sqlite_engine, accounts=5, files_dir=tmp_path, render=False)
    assert render_run(sqlite_engine, scenario.org_id, scenario.run_id, tmp_path / "files",
                      workers=2) == 5
    with sqlite_engine.begin() as conn:
        rows = conn.execute(sa.select(documents.c.path, documents.c.sha256,
                                      documents.c.size)).all()
    assert len(rows) == 25
    for row in rows:
        data = Path(row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.size
    assert sorted(p for p in (tmp_path / "files").rglob("*") if p.is_file()) == \
        sorted(Path(row.path) for row in rows)
