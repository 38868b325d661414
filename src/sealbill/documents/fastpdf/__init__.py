"""The compiled invoice template: a 1-page Factur-X PDF/A-3b without Typst, in about a
millisecond. :func:`render_pdf` raises :class:`NoFit` for an invoice the template cannot
hold; the caller then renders it with Typst (:mod:`sealbill.documents.pdf`)."""

from __future__ import annotations

from sealbill.documents.fastpdf.canvas import NoFit
from sealbill.documents.fastpdf.layout import Page
from sealbill.documents.fastpdf.writer import assemble
from sealbill.documents.pdf import invoice_view
from sealbill.domain.invoices import Invoice

__all__ = ["NoFit", "render_pdf"]


def render_pdf(invoice: Invoice, xml: bytes) -> bytes:
    """Factur-X PDF/A-3b of ``invoice`` with ``xml`` embedded, or :class:`NoFit`."""
    view = invoice_view(invoice)
    canvas = Page(view).draw()
    return assemble(content=canvas.stream(), faces=canvas.faces.values(), xml=xml,
                    title=view["doc_title"], author=invoice.seller.name,
                    language=view["lang"], issued=invoice.issue_date, number=invoice.number)
