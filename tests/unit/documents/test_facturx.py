"""The Factur-X container: PDF/A-3b, factur-x.xml attached, XMP, deterministic bytes."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pikepdf
import pytest
from facturx import get_xml_from_pdf
from lxml import etree

from sealbill.documents.cii import NS, build_cii
from sealbill.documents.facturx import (
    FacturXError,
    embed_with_facturx_library,
    facturx_xmp,
    make_facturx,
)
from sealbill.documents.render import TYPST, render_invoice
from tests.support.facturx_check import check_pdf, check_pdf_container
from tests.unit.documents import samples
from tests.unit.documents.samples import CORPUS, Corpus

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_pdf_is_a_facturx_en16931_container(name: str, corpus: Corpus) -> None:
    findings = check_pdf_container(corpus[name][1].pdf)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("name", ["domestic_fr", "credit_note_fr", "reverse_charge_en"])
def test_embedded_xml_is_the_rendered_xml_with_the_invoice_totals(name: str,
                                                                  corpus: Corpus) -> None:
    invoice, rendered = corpus[name]
    filename, xml = get_xml_from_pdf(rendered.pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert xml == rendered.xml
    sums = etree.fromstring(xml).xpath(
        "//ram:SpecifiedTradeSettlementHeaderMonetarySummation", namespaces=NS)[0]
    amount = {child.tag.split("}")[1]: Decimal(child.text) for child in sums}
    assert amount["TaxBasisTotalAmount"] == Decimal(invoice.total_excl_minor) / 100
    assert amount["TaxTotalAmount"] == Decimal(invoice.tax_total_minor) / 100
    assert amount["GrandTotalAmount"] == Decimal(invoice.total_incl_minor) / 100


def test_embedded_file_is_declared_as_data_with_xml_mime_type(corpus: Corpus) -> None:
    with pikepdf.open(io.BytesIO(corpus["domestic_fr"][1].pdf)) as pdf:
        names = pdf.Root.Names.EmbeddedFiles.Names
        spec = names[1]
        assert str(names[0]) == "factur-x.xml" and str(spec.UF) == "factur-x.xml"
        assert spec.AFRelationship == pikepdf.Name.Data
        assert spec.EF.F.Subtype == pikepdf.Name("/text/xml")
        assert spec.objgen in {item.objgen for item in pdf.Root.AF}


def test_same_invoice_renders_to_the_same_bytes_and_digests() -> None:
    first, second = render_invoice(samples.mixed_rates()), render_invoice(samples.mixed_rates())
    assert first.pdf == second.pdf and first.xml == second.xml
    assert (first.pdf_sha256, first.digest) == (second.pdf_sha256, second.digest)


def test_another_process_renders_the_same_bytes(corpus: Corpus) -> None:
    code = ("from tests.unit.documents.samples import domestic;"
            "from sealbill.documents.render import render_invoice;"
            "print(render_invoice(domestic()).digest)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == corpus["domestic_fr"][1].digest


def test_a_changed_invoice_changes_the_digest(corpus: Corpus) -> None:
    invoice, rendered = corpus["domestic_fr"]
    other = render_invoice(replace(invoice, account_reference="CUST-0043"))
    assert other.digest != rendered.digest and other.pdf_sha256 != rendered.pdf_sha256


def test_dates_come_from_the_issue_date_and_the_id_from_the_number(corpus: Corpus) -> None:
    invoice, rendered = corpus["domestic_fr"]
    with pikepdf.open(io.BytesIO(rendered.pdf)) as pdf:
        assert str(pdf.docinfo.CreationDate) == "D:20250331000000Z"
        assert str(pdf.docinfo.Title) == f"Facture {invoice.number}"
        xmp = pdf.Root.Metadata.read_bytes().decode()
        first_id = bytes(pdf.trailer.ID[0])
    assert "<xmp:CreateDate>2025-03-31T00:00:00+00:00</xmp:CreateDate>" in xmp
    renumbered = render_invoice(replace(invoice, number="FA-2025-0999"))
    with pikepdf.open(io.BytesIO(renumbered.pdf)) as pdf:
        assert bytes(pdf.trailer.ID[0]) != first_id
    with pikepdf.open(io.BytesIO(render_invoice(invoice).pdf)) as pdf:
        assert bytes(pdf.trailer.ID[0]) == first_id


def test_xmp_patch_refuses_an_unexpected_layout() -> None:
    with pytest.raises(FacturXError):
        facturx_xmp(b"<x:xmpmeta><rdf:RDF></rdf:RDF></x:xmpmeta>")


def test_factur_x_library_pipeline_is_valid_too(corpus: Corpus) -> None:
    """The benchmark's alternative must be a fair comparison: a valid Factur-X as well."""
    invoice = samples.domestic()
    pdf = embed_with_facturx_library(invoice, build_cii(invoice))
    assert check_pdf(pdf) == []
    typst = render_invoice(invoice, renderer=TYPST)
    assert typst.renderer == TYPST
    assert make_facturx(invoice, build_cii(invoice)) == typst.pdf
