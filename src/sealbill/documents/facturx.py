"""Factur-X: a PDF/A-3b invoice carrying its CII XML as ``factur-x.xml``.

How (the fastest of the two measured, see bench/bench_render.py):
1. Typst writes the PDF/A-3b itself and attaches the XML (``pdf.attach``: embedded file
   ``factur-x.xml``, ``/AFRelationship /Data``, ``/Subtype /text/xml``, catalog ``/AF``);
2. pikepdf adds the Factur-X identification to the XMP packet Typst wrote (the ``fx:``
   properties and their PDF/A extension schema) and saves with a content-derived /ID.
The alternative, ``facturx.generate_from_binary`` on a plain Typst PDF, is kept in
:func:`embed_with_facturx_library` for the benchmark only: it is slower and stamps the
current time into the file, so its bytes change on every run.

Invariants:
- the same invoice gives the same bytes: every date is the issue date, the first /ID element
  derives from the document title (the invoice number) and the second from the content;
- the XMP stays a single well-formed packet, uncompressed, with Typst's PDF/A-3b
  identification (``pdfaid:part`` 3, ``conformance`` B) intact.
"""

from __future__ import annotations

import hashlib
import io
from typing import Final

from sealbill.documents.pdf import compile_pdf
from sealbill.domain.invoices import Invoice

FILENAME: Final = "factur-x.xml"
FX_NAMESPACE: Final = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
CONFORMANCE_LEVEL: Final = "EN 16931"

_FX_PROPERTIES = {
    "DocumentFileName": "The name of the embedded XML document",
    "DocumentType": "The type of the hybrid document in capital letters, e.g. INVOICE",
    "Version": "The actual version of the standard applying to the embedded XML document",
    "ConformanceLevel": "The conformance level of the embedded XML document",
}
_FX_SCHEMA: Final = (
    '<rdf:li rdf:parseType="Resource">'
    "<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>"
    f"<pdfaSchema:namespaceURI>{FX_NAMESPACE}</pdfaSchema:namespaceURI>"
    "<pdfaSchema:prefix>fx</pdfaSchema:prefix>"
    "<pdfaSchema:property><rdf:Seq>"
    + "".join(
        '<rdf:li rdf:parseType="Resource">'
        f"<pdfaProperty:name>{name}</pdfaProperty:name>"
        "<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
        "<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{description}</pdfaProperty:description>"
        "</rdf:li>"
        for name, description in _FX_PROPERTIES.items()
    )
    + "</rdf:Seq></pdfaSchema:property></rdf:li>"
).encode()
_FX_VALUES: Final = (
    f'<rdf:Description rdf:about="" xmlns:fx="{FX_NAMESPACE}">'
    "<fx:DocumentType>INVOICE</fx:DocumentType>"
    f"<fx:DocumentFileName>{FILENAME}</fx:DocumentFileName>"
    "<fx:Version>1.0</fx:Version>"
    f"<fx:ConformanceLevel>{CONFORMANCE_LEVEL}</fx:ConformanceLevel>"
    "</rdf:Description>"
).encode()
_SCHEMAS_END: Final = b"</rdf:Bag></pdfaExtension:schemas>"
_RDF_END: Final = b"</rdf:RDF>"


class FacturXError(RuntimeError):
    """The PDF Typst produced does not have the structure this module relies on."""


def facturx_xmp(xmp: bytes) -> bytes:
    """Typst's XMP packet with the Factur-X properties and their extension schema added.

    Typst declares a ``pdfaExtension:schemas`` bag for its own PDF/A-3 properties; the fx
    schema goes into that bag (PDF/A wants one list of extension schemas) and the fx values
    into their own ``rdf:Description``.
    """
    if xmp.count(_SCHEMAS_END) != 1 or xmp.count(_RDF_END) != 1:
        raise FacturXError("unexpected XMP layout from typst (extension schema bag not found)")
    xmp = xmp.replace(_SCHEMAS_END, _FX_SCHEMA + _SCHEMAS_END)
    return xmp.replace(_RDF_END, _FX_VALUES + _RDF_END)


def add_facturx_metadata(pdf: bytes) -> bytes:
    """Mark a Typst PDF/A-3b that already carries ``factur-x.xml`` as a Factur-X invoice."""
    import pikepdf  # here: the compiled template's workers never load it (~0.1 s each)

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        if "/AF" not in doc.Root or "/Metadata" not in doc.Root:
            raise FacturXError("typst PDF has no /AF or /Metadata in its catalog")
        xmp = facturx_xmp(doc.Root.Metadata.read_bytes())
        doc.Root.Metadata = doc.make_stream(
            xmp, Type=pikepdf.Name.Metadata, Subtype=pikepdf.Name.XML
        )
        out = io.BytesIO()
        # deterministic_id: qpdf keeps /ID[0] (from the title, i.e. the invoice number) and
        # computes /ID[1] from the content instead of from the clock; fix_metadata_version
        # off: it would re-serialize the XMP through lxml for a version typst already set.
        doc.save(out, deterministic_id=True, fix_metadata_version=False)
    return out.getvalue()


def make_facturx(invoice: Invoice, xml: bytes) -> bytes:
    """Factur-X EN 16931 PDF/A-3b of ``invoice`` with ``xml`` (its CII) embedded."""
    return add_facturx_metadata(compile_pdf(invoice, attachment=xml))


def content_digest(data: bytes) -> str:
    """SHA-256 hex of a rendered document. The bytes are deterministic, so this is too."""
    return hashlib.sha256(data).hexdigest()


def embed_with_facturx_library(invoice: Invoice, xml: bytes) -> bytes:
    """The alternative pipeline, for the benchmark: plain Typst PDF/A-3b, then
    ``facturx.generate_from_binary``. Not deterministic (factur-x writes the current time)."""
    from facturx import generate_from_binary

    pdf = compile_pdf(invoice)
    metadata = {
        "author": invoice.seller.name,
        "keywords": "Factur-X, Invoice",
        "title": f"{invoice.seller.name}: {invoice.number}",
        "subject": f"Factur-X invoice {invoice.number}",
    }
    result: bytes = generate_from_binary(
        pdf, xml, flavor="factur-x", level="en16931", check_xsd=False,
        pdf_metadata=metadata, lang=invoice.locale,
    )
    return result
