"""The seller's legal form, capital and register (BT-33) reach both the XML and the PDF."""

from __future__ import annotations

from io import BytesIO

from pypdf import PdfReader

from sealbill.documents.render import RenderedDocuments
from sealbill.domain.invoices import Invoice
from tests.support.facturx_check import check_pdf
from tests.unit.documents.samples import SELLER


def test_seller_legal_information_is_printed_and_in_the_xml(
        corpus: dict[str, tuple[Invoice, RenderedDocuments]]) -> None:
    assert SELLER.legal_info
    for _, rendered in corpus.values():
        assert f"<ram:Description>{SELLER.legal_info}</ram:Description>".encode() in \
            rendered.xml
    _, first = next(iter(corpus.values()))
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(first.pdf)).pages)
    assert "RCS Paris" in text
    assert check_pdf(first.pdf) == []
