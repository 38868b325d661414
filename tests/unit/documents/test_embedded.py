"""The quick reader of the embedded factur-x.xml: the same bytes as qpdf, or "ask qpdf"."""

from __future__ import annotations

import io

import pikepdf
import pytest

from sealbill.documents.embedded import embedded_xml
from sealbill.documents.render import RenderedDocuments
from sealbill.domain.invoices import Invoice
from sealbill.pipeline.delivery.compose import extract_facturx_xml

Corpus = dict[str, tuple[Invoice, RenderedDocuments]]


def _qpdf_xml(pdf: bytes) -> bytes:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        return bytes(document.attachments["factur-x.xml"].get_file().read_bytes())


def test_reads_the_same_xml_as_qpdf_for_every_rendered_sample(corpus: Corpus) -> None:
    for name, (_, rendered) in corpus.items():
        quick = embedded_xml(rendered.pdf)
        assert quick is not None, name  # sealbill's own layout: the quick path applies
        assert quick == _qpdf_xml(rendered.pdf) == rendered.xml, name


def test_refuses_an_incremental_update_and_the_full_parser_reads_it(corpus: Corpus) -> None:
    pdf = corpus["domestic_fr"][1].pdf
    with pikepdf.open(io.BytesIO(pdf)) as document:
        replacement = pikepdf.AttachedFileSpec(document, b"<other/>", mime_type="text/xml")
        document.attachments["factur-x.xml"] = replacement
        out = io.BytesIO()
        document.save(out)
    rewritten = out.getvalue()
    # an appended revision: a second %%EOF, the old objects still in the file
    updated = pdf + rewritten[rewritten.index(b"%PDF"):]
    assert embedded_xml(updated) is None
    assert extract_facturx_xml(updated) == _qpdf_xml(updated)  # decided by qpdf instead
    assert embedded_xml(rewritten) == b"<other/>" == extract_facturx_xml(rewritten)


def test_refuses_what_it_cannot_resolve_exactly(corpus: Corpus) -> None:
    pdf = corpus["domestic_fr"][1].pdf
    with pikepdf.open(io.BytesIO(pdf)) as document:
        out = io.BytesIO()
        document.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    compressed = out.getvalue()  # cross-reference stream, objects inside object streams
    assert embedded_xml(compressed) is None
    assert extract_facturx_xml(compressed) == corpus["domestic_fr"][1].xml


@pytest.mark.parametrize("mutation", [
    (b"/Length ", b"/Length 99999", "length beyond the stream"),
    (b"(factur-x.xml)", b"(factur-y.xml)", "another file name"),
    (b"startxref", b"startxrex", "no startxref"),
])
def test_returns_none_rather_than_guessing(corpus: Corpus,
                                           mutation: tuple[bytes, bytes, str]) -> None:
    pdf = corpus["domestic_fr"][1].pdf
    old, new, _ = mutation
    if old == b"/Length ":
        at = pdf.index(b"/Type /EmbeddedFile")
        start = pdf.rindex(b"/Length ", 0, at + 200)
        end = pdf.index(b">>", start)
        broken = pdf[:start] + new + pdf[end:]
    else:
        broken = pdf.replace(old, new)
    assert embedded_xml(broken) is None


def test_garbage_is_not_an_answer() -> None:
    assert embedded_xml(b"") is None
    assert embedded_xml(b"%PDF-1.7\nstartxref\n5\n%%EOF") is None
