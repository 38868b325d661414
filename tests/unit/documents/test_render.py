"""One entry point for all documents, alone or in bulk on a process pool."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sealbill.documents.mentions import DocumentError
from sealbill.documents.render import render_invoice, render_many
from sealbill.domain.invoices import Invoice
from tests.unit.documents import samples
from tests.unit.documents.samples import Corpus


def numbered(count: int) -> list[Invoice]:
    """Distinct invoices (number and buyer name vary), as a billing run produces."""
    base = samples.domestic()
    return [replace(base, number=f"FA-2025-{i:05d}",
                    buyer=replace(base.buyer, name=f"Client n° {i}"))
            for i in range(count)]


def test_render_invoice_returns_every_document_with_its_digest(corpus: Corpus) -> None:
    invoice, rendered = corpus["domestic_fr"]
    assert rendered.number == invoice.number
    assert rendered.pdf.startswith(b"%PDF-1.7") and rendered.xml.startswith(b"<?xml")
    assert rendered.html.startswith("<!DOCTYPE html>") and invoice.number in rendered.text
    assert rendered.subject.startswith(f"Facture {invoice.number}")
    import hashlib

    assert rendered.pdf_sha256 == hashlib.sha256(rendered.pdf).hexdigest()
    assert rendered.xml_sha256 == hashlib.sha256(rendered.xml).hexdigest()


def test_render_invoice_refuses_an_invalid_invoice_and_lists_every_problem() -> None:
    invoice = replace(samples.reverse_charge(), number="INV 3",
                      buyer=replace(samples.DE_BUYER, vat_id=None))
    with pytest.raises(DocumentError) as error:
        render_invoice(invoice)
    assert len(error.value.problems) == 2
    assert "BR-FR-01/02" in str(error.value) and "BR-AE-02" in str(error.value)


def test_pool_renders_the_same_documents_in_input_order() -> None:
    invoices = numbered(12)
    pooled = list(render_many(invoices, workers=2, chunk_size=3))
    assert [r.number for r in pooled] == [i.number for i in invoices]
    assert [r.digest for r in pooled] == [render_invoice(i).digest for i in invoices]


def test_pool_reads_the_input_lazily() -> None:
    pulled = 0

    def source() -> Iterator[Invoice]:
        nonlocal pulled
        for invoice in numbered(40):
            pulled += 1
            yield invoice

    results = render_many(source(), workers=2, chunk_size=2, prefetch=1)
    first = next(results)
    assert first.number == "FA-2025-00000"
    assert pulled <= 2 * 1 * 2 + 2  # workers × prefetch chunks in flight, plus the next one
    results.close()


def test_pool_stops_on_the_first_invalid_invoice() -> None:
    invoices = numbered(6)
    invoices[3] = replace(invoices[3], number="bad number")
    with pytest.raises(DocumentError):
        list(render_many(invoices, workers=2, chunk_size=1))


def test_single_worker_renders_in_process() -> None:
    invoices = numbered(3)
    assert [r.number for r in render_many(invoices, workers=1)] == [i.number for i in invoices]


def _worker_has_subsetter() -> bool:
    import sys

    return "fontTools.subset" in sys.modules


def test_pool_workers_get_the_fonts_prepared_and_still_subset_what_they_lack() -> None:
    from sealbill.documents.render import _shared_pool

    invoices = numbered(4)
    pooled = list(render_many(invoices, workers=2, chunk_size=1))
    assert {r.renderer for r in pooled} == {"fast"}
    # The common faces came from this process: no worker loaded fontTools' subsetter.
    assert not any(_shared_pool(2).submit(_worker_has_subsetter).result() for _ in range(4))
    greek = [replace(i, buyer=replace(i.buyer, name=f"Ωμέγα Ltd {k}"))
             for k, i in enumerate(invoices)]
    pooled = list(render_many(greek, workers=2, chunk_size=1))
    assert {r.renderer for r in pooled} == {"fast"}
    assert [r.digest for r in pooled] == [render_invoice(i).digest for i in greek]


def test_pool_workers_do_not_run_the_parent_main_module_again(tmp_path: Path) -> None:
    """A spawned worker would import the parent's main script again (the ``sealbill``
    command: the whole CLI, ~1.4 s of CPU per worker); a renderer has no use for it."""
    marker = tmp_path / "imported"
    script = tmp_path / "main_script.py"
    script.write_text(
        "import pathlib\n"
        f"if __name__ != '__main__':\n    pathlib.Path({str(marker)!r}).write_text(__name__)\n"
        "from sealbill.documents.render import render_many, shutdown_pool\n"
        "from tests.unit.documents.test_render import numbered\n"
        "if __name__ == '__main__':\n"
        "    assert len(list(render_many(numbered(4), workers=2, chunk_size=1))) == 4\n"
        "    shutdown_pool()\n")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=120)
    assert not marker.exists(), marker.read_text()


def test_pool_stages_the_same_files_and_removes_what_the_caller_never_got(
        tmp_path: Path) -> None:
    from sealbill.documents.filestore import FileStore
    from sealbill.documents.render import render_stored

    store = FileStore(tmp_path)
    store.folder("acme")
    invoices = numbered(10)
    results = render_stored(invoices, store, "acme", workers=2, chunk_size=2)
    first = next(results)
    results.close()  # the caller stops: the chunks in flight are discarded
    assert first.number == invoices[0].number
    stored = store.publish_many([staged for _, staged in first.files])
    expected = render_invoice(invoices[0]).files()
    assert [kind for kind, _ in first.files] == list(expected)
    assert [Path(path).read_bytes() for path, _ in stored] == list(expected.values())
    assert len(os.listdir(tmp_path / "acme")) == 5  # no temporary file left
