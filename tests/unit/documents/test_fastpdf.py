"""The compiled template against the Typst reference, on generated invoices.

For every generated invoice (long names, accents and other scripts the fonts have, every
currency sealbill renders, invoices and credit notes, French and English, one to many lines)
either the compiled template renders it, and then its PDF says, word for word, what the
Typst PDF says, embeds the very same XML, and is a valid Factur-X container — or it does not
fit, and it is rendered by Typst and counted as a fallback.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace

import pikepdf
import pytest
from facturx import get_facturx_xml_from_pdf, get_level, get_xml_from_pdf
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree
from pypdf import PdfReader

from sealbill.documents import i18n
from sealbill.documents.cii import build_cii
from sealbill.documents.cii_text import build_cii_text
from sealbill.documents.embedded import embedded_xml
from sealbill.documents.facturx import make_facturx
from sealbill.documents.fastpdf import NoFit, render_pdf
from sealbill.documents.pdf import invoice_view
from sealbill.documents.render import FALLBACK, FAST, TYPST, render_invoice
from sealbill.domain.invoices import Address, DocumentKind, Invoice, VatCategory
from sealbill.domain.money import CURRENCY_EXPONENTS
from tests.support.facturx_check import Validator, check_pdf_container, check_xml, errors
from tests.unit.documents import samples

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
EXTRA = "éèêëàâäçùûüôöîïÉÈÀÇŒœßæøåñłŁžščřőűğışÆØÅ&'\"-.,/()+#@*%€£$°"
GREEK, CYRILLIC = "αβγδΩπλΣ", "ЖжЯяДдЁё"  # faces beyond the common page
CURRENCIES = sorted(c for c, e in CURRENCY_EXPONENTS.items() if e <= 2)  # 3 are refused


def words(max_size: int, *alphabets: str) -> st.SearchStrategy[str]:
    """Words of one script each (Typst shapes each script apart, so a word mixing two
    scripts is two pieces of text there)."""
    word = st.one_of(*(st.text(st.sampled_from(a), min_size=1, max_size=14) for a in alphabets))
    return st.lists(word, min_size=1, max_size=max_size).map(" ".join)


names = st.one_of(words(4, LATIN + EXTRA), words(12, LATIN + EXTRA, GREEK, CYRILLIC))


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    currency = draw(st.sampled_from(CURRENCIES))
    foreign = currency != "EUR"  # no VAT outside EUR (rendering refuses it otherwise)
    count = draw(st.one_of(st.integers(1, 12), st.integers(13, 40)))
    lines = []
    for k in range(1, count + 1):
        category, rate = (VatCategory.EXPORT, "0") if foreign else draw(st.sampled_from(
            [(VatCategory.STANDARD, "20"), (VatCategory.STANDARD, "5.5"),
             (VatCategory.STANDARD, "10"), (VatCategory.REVERSE_CHARGE, "0")]))
        quantity = str(draw(st.decimals("0.5", "99999", places=draw(st.integers(0, 3)))))
        price = str(draw(st.decimals("0.01", "9999", places=2 if CURRENCY_EXPONENTS[
            currency] else 0)))
        lines.append(samples.line(k, draw(names), quantity, price, category, rate,
                                  currency=currency))
    buyer = replace(samples.DE_BUYER, name=draw(names), address=Address(
        draw(names), "10115", draw(words(3, LATIN + EXTRA)), "DE"))
    kind = draw(st.sampled_from(DocumentKind))
    credit = kind is DocumentKind.CREDIT_NOTE
    return samples.build_invoice(
        f"{'AV' if credit else 'FA'}-2025-{draw(st.integers(1, 99999)):05d}", lines, buyer,
        locale=draw(st.sampled_from(["fr", "en"])), kind=kind, currency=currency,
        payment_method=draw(st.sampled_from([samples.CARD, samples.SEPA, samples.TRANSFER,
                                             None])),
        corrected=("FA-2025-0001", samples.ISSUE) if credit else None)


def extracted_text(pdf: bytes) -> str:
    """The text pypdf extracts, piece after piece, without any whitespace.

    Whitespace is left out because where a line wraps is layout, not content: Typst breaks
    long words at Unicode line-break opportunities and cuts words of 24+ characters into
    boxes, the compiled template wraps at spaces. What is compared is the characters.
    """
    pieces: list[str] = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        page.extract_text(visitor_text=lambda text, *_: pieces.append(text))
    return squeeze("".join(pieces))


def squeeze(text: str) -> str:
    return "".join(char for char in text if not char.isspace())


def printed_strings(view: object) -> list[str]:
    """Every string of the view that the page prints."""
    if isinstance(view, str):
        return [view]
    if isinstance(view, list):
        return [s for item in view for s in printed_strings(item)]
    if isinstance(view, dict):
        return [s for key, item in view.items() if key not in ("lang", "doc_title")
                for s in printed_strings(item)]
    return []


def check_fast_pdf(invoice: Invoice, pdf: bytes, xml: bytes) -> None:
    fast, typst = extracted_text(pdf), extracted_text(make_facturx(invoice, xml))
    assert Counter(fast) == Counter(typst), (fast, typst)  # the same characters, as often
    fast, typst = fast.casefold(), typst.casefold()  # titles and captions print in capitals
    for printed in printed_strings(invoice_view(invoice)):
        assert squeeze(printed).casefold() in fast  # each text whole: names, amounts, mentions
        assert squeeze(printed).casefold() in typst
    assert embedded_xml(pdf) == xml  # the guard's quick reader follows the same layout
    assert bytes(get_xml_from_pdf(pdf, check_xsd=False)[1]) == xml
    name, found = get_facturx_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml" and get_level(etree.fromstring(found)) == "en16931"
    assert check_pdf_container(pdf) == []
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert doc.check_pdf_syntax() == []  # qpdf reads every object and stream
        assert doc.open_metadata().pdfa_status == "3B"
        spec = doc.Root.AF[0]
        assert spec.AFRelationship == "/Data" and spec.EF.F.Subtype == "/text/xml"
        assert doc.Root.OutputIntents[0].S == "/GTS_PDFA1"
        assert doc.Root.OutputIntents[0].DestOutputProfile.N == 3
        assert len(doc.pages) == 1
        for font in doc.pages[0].Resources.Font.values():
            assert font.Encoding == "/Identity-H" and "/ToUnicode" in font
            assert "/FontFile3" in font.DescendantFonts[0].FontDescriptor


# No shrinking: each example compiles a Typst PDF, and shrinking a 40-line invoice takes
# minutes; the failing example is printed whole instead.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(invoices())
def test_fast_pdf_says_what_the_typst_pdf_says_or_falls_back(invoice: Invoice) -> None:
    xml = build_cii_text(invoice)
    assert xml == build_cii(invoice)
    try:
        pdf = render_pdf(invoice, xml)
    except NoFit:
        rendered = render_invoice(invoice)
        assert rendered.renderer == FALLBACK and rendered.fallback_reason
        assert rendered.pdf == make_facturx(invoice, xml)
        return
    check_fast_pdf(invoice, pdf, xml)


@settings(max_examples=15, deadline=None)
@given(invoice=invoices())
def test_fast_xml_passes_xsd_en16931_and_fr_ctc(invoice: Invoice, schematron: Validator
                                                ) -> None:
    assert errors(check_xml(build_cii_text(invoice))) == []


@pytest.mark.parametrize("name", sorted(set(samples.CORPUS) - {"long_300_lines_fr"}))
def test_every_sample_that_fits_matches_its_typst_reference(name: str) -> None:
    invoice = samples.CORPUS[name]()
    xml = build_cii_text(invoice)
    try:
        pdf = render_pdf(invoice, xml)
    except NoFit:
        assert name in {"hostile_names_fr", "rtl_en"}  # right-to-left text goes to Typst
        return
    check_fast_pdf(invoice, pdf, xml)


def test_an_invoice_longer_than_a_page_falls_back_to_typst() -> None:
    for count in (40, 300):
        rendered = render_invoice(samples.long_invoice(count))
        assert rendered.renderer == FALLBACK
        assert "page" in rendered.fallback_reason
        assert len(PdfReader(io.BytesIO(rendered.pdf)).pages) > 1


def test_text_the_fonts_lack_falls_back_to_typst() -> None:
    invoice = samples.build_invoice("FA-2025-0100", [samples.line(1, "云服务 hosting", "1", "10")])
    rendered = render_invoice(invoice)
    assert rendered.renderer == FALLBACK and "cannot print" in rendered.fallback_reason


def test_a_word_too_long_for_its_column_falls_back_to_typst() -> None:
    invoice = samples.build_invoice("FA-2025-0101", [
        samples.line(1, samples.LONG_WORD, "1", "10")])
    rendered = render_invoice(invoice)
    assert rendered.renderer == FALLBACK and "too long" in rendered.fallback_reason


def test_short_invoices_take_the_fast_path_and_typst_can_be_forced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = samples.domestic()
    assert render_invoice(invoice).renderer == FAST
    monkeypatch.setenv("SEALBILL_RENDERER", "typst")
    forced = render_invoice(invoice)
    assert forced.renderer == TYPST
    assert forced.pdf == make_facturx(invoice, forced.xml)


def test_the_same_invoice_gives_the_same_fast_bytes() -> None:
    invoice = samples.mixed_rates()
    xml = build_cii_text(invoice)
    assert render_pdf(invoice, xml) == render_pdf(invoice, xml)
    other = render_pdf(replace(invoice, number="INV-2025-0999"), xml)
    assert other != render_pdf(invoice, xml)


def test_amounts_names_and_mentions_are_in_the_fast_pdf_text() -> None:
    invoice = samples.domestic()
    rendered = render_invoice(invoice)
    assert rendered.renderer == FAST
    found = extracted_text(rendered.pdf)
    total = i18n.money_text(invoice.total_incl_minor, "EUR", "fr")
    expected = ["FACTURE", invoice.number, "L'Épid'Or&Fils", "L441-10", "Page1/1", "TTC",
                squeeze(total), "BâtimentB", "FR7630006000011234567890189"]
    assert [text for text in expected if text not in found] == []
