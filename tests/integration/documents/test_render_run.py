"""render_run: the compiled template by default, Typst when forced, counted either way."""

from __future__ import annotations

import io
from pathlib import Path

import sqlalchemy as sa
from pypdf import PdfReader
from sqlalchemy.engine import Engine

from sealbill.documents.embedded import embedded_xml
from sealbill.documents.render import FAST, TYPST
from sealbill.pipeline.render import RenderCounts, render_run
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
