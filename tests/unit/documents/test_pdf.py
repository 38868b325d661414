"""The printed invoice: what a reader sees, in both languages, whatever the text."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from sealbill.documents import i18n
from sealbill.documents.cii import build_cii
from sealbill.documents.pdf import compile_pdf
from sealbill.domain.invoices import Invoice
from tests.unit.documents import samples
from tests.unit.documents.samples import BUYER_IBAN, CORPUS, LONG_WORD, Corpus

_SPACES = re.compile(r"[\s\u00a0\u202f\u200b]+")


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def squash(value: str) -> str:
    """Text without any kind of space or line break (PDF extraction moves them around)."""
    return _SPACES.sub("", value)


def money(invoice: Invoice, minor: int) -> str:
    return i18n.money_text(minor, invoice.currency, invoice.locale)


@pytest.mark.parametrize("name", sorted(set(CORPUS) - {"rtl_en"}))
def test_pdf_text_shows_number_totals_and_buyer_name(name: str, corpus: Corpus) -> None:
    invoice, rendered = corpus[name]
    content = squash("".join(pages_text(rendered.pdf)))
    assert squash(invoice.number) in content
    assert squash(invoice.buyer.name) in content
    for total in (invoice.total_excl_minor, invoice.tax_total_minor, invoice.total_incl_minor):
        assert squash(money(invoice, total)) in content


def test_right_to_left_buyer_name_is_printed(corpus: Corpus) -> None:
    invoice, rendered = corpus["rtl_en"]
    content = pages_text(rendered.pdf)[0]
    # Extraction returns visual order for RTL runs; every word must still be there.
    for word in invoice.buyer.name.split() + invoice.buyer.address.city.split():
        assert word in content


@pytest.mark.parametrize("name", sorted(set(CORPUS) - {"long_300_lines_fr"}))
def test_short_invoices_fit_on_one_page(name: str, corpus: Corpus) -> None:
    pages = pages_text(corpus[name][1].pdf)
    assert len(pages) == 1
    assert "Page 1/1" in pages[0]


def test_300_lines_paginate_with_repeated_header_and_totals_at_the_end(corpus: Corpus) -> None:
    invoice, rendered = corpus["long_300_lines_fr"]
    pages = pages_text(rendered.pdf)
    count = len(pages)
    assert count > 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number}/{count}" in text
    line_pages = [text for text in pages if "Compteur" in text]
    for text in line_pages:
        assert "Désignation" in text and "Montant HT" in text  # header row repeated
    assert [squash(money(invoice, invoice.total_incl_minor)) in squash(t) for t in pages] == [
        False] * (count - 1) + [True]
    assert "Net à payer" in pages[-1]
    printed = re.findall(r"Compteur n° (\d{3})", "".join(pages))
    assert printed == [f"{i:03d}" for i in range(1, 301)]  # every line, once, in order


def test_user_text_prints_literally_and_long_words_wrap(corpus: Corpus) -> None:
    _, rendered = corpus["hostile_names_fr"]
    (text,) = pages_text(rendered.pdf)
    assert '#1 $5 <b>bold</b> *not* _em_' in text
    assert "\u200b" not in text  # wrapping adds no invisible characters to the text
    assert LONG_WORD in re.sub(r"\n", "", text)  # all there, wrapped across lines
    assert squash('Prestation "spéciale" & <urgent> #tag $100 \\') in squash(text)


def test_typst_code_in_user_text_is_not_evaluated() -> None:
    base = samples.consumer()
    evil = '#panic("boom") $x^2$ #import "/etc/passwd" ]) #{ } \\ // /* @label <tag>'
    invoice = replace(base, buyer=replace(base.buyer, name=evil))
    (text,) = pages_text(compile_pdf(invoice))
    assert squash(evil) in squash(text)


def test_french_legal_mentions_are_printed(corpus: Corpus) -> None:
    text = "".join(pages_text(corpus["domestic_fr"][1].pdf))
    for mention in ("40 €", "Pénalités de retard", "Pas d'escompte",
                    "SIREN 812345676", "SIRET 81234567600017", "prestation de services"):
        assert squash(mention) in squash(text), mention
    assert "Indemnité forfaitaire pour frais de recouvrement : non applicable" in "".join(
        pages_text(corpus["consumer_fr"][1].pdf)).replace("\n", " ")


def test_reverse_charge_and_export_print_their_vat_mentions(corpus: Corpus) -> None:
    reverse = squash("".join(pages_text(corpus["export_and_reverse_charge_fr"][1].pdf)))
    assert squash("Autoliquidation") in reverse
    assert squash("art. 283-2 du CGI") in reverse
    assert squash("art. 262 I du CGI") in reverse
    english = squash("".join(pages_text(corpus["reverse_charge_en"][1].pdf)))
    assert squash("Reverse charge (autoliquidation)") in english


def test_credit_note_has_its_title_and_original_invoice(corpus: Corpus) -> None:
    invoice, rendered = corpus["credit_note_fr"]
    text = squash(pages_text(rendered.pdf)[0])
    assert squash("AVOIR") in text
    assert squash(f"Facture d'origine {invoice.corrected_invoice_number} du 31 mars 2025") in text
    assert squash("Date d'échéance") not in text
    english = squash(pages_text(corpus["credit_note_en"][1].pdf)[0])
    assert squash("CREDIT NOTE") in english and squash("Original invoice") in english


def test_english_invoice_uses_english_labels_and_formats(corpus: Corpus) -> None:
    _, rendered = corpus["mixed_rates_en"]
    text = squash(pages_text(rendered.pdf)[0])
    for label in ("INVOICE", "Amount due", "Due date", "30 April 2025", "€2,111.88",
                  "VAT 5.5%", "Customer reference"):
        assert squash(label) in text, label
    assert squash("Net à payer") not in text


def test_payment_details_are_printed_and_buyer_accounts_masked(corpus: Corpus) -> None:
    seller_side = squash(pages_text(corpus["domestic_fr"][1].pdf)[0])
    assert squash("IBAN FR76 3000 6000 0112 3456 7890 189") in seller_side
    assert squash("BIC AGRIFRPPXXX") in seller_side
    debit = replace(samples.domestic(), payment_method=replace(
        samples.SEPA, display=BUYER_IBAN))  # a full IBAN that should never have been stored
    text = squash(pages_text(compile_pdf(debit))[0])
    assert BUYER_IBAN not in text
    assert squash("FR14 •••• 2606") in text


def test_pdf_embeds_only_the_fonts_shipped_with_typst(corpus: Corpus) -> None:
    shipped = ("LibertinusSerif", "DejaVuSansMono", "NewCM")
    for _, rendered in corpus.values():
        with pikepdf.open(io.BytesIO(rendered.pdf)) as pdf:
            for page in pdf.pages:
                for font in page.Resources.Font.values():
                    name = str(font.BaseFont).split("+")[-1]
                    assert name.startswith(shipped), name


def test_scripts_without_a_bundled_font_print_a_placeholder_and_keep_the_xml_exact() -> None:
    base = samples.consumer()
    name = "山田商事 ภาษาไทย हिन्दी Ltd"
    invoice = replace(base, buyer=replace(base.buyer, name=name))
    first, second = compile_pdf(invoice), compile_pdf(invoice)
    assert first == second
    (text,) = pages_text(first)
    assert "\ufffd" in text and "Ltd" in text
    assert name.encode() in build_cii(invoice)


@settings(max_examples=25, deadline=None)
@given(name=st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1,
                    max_size=120))
def test_any_buyer_name_renders_on_one_page(name: str) -> None:
    base = samples.consumer()
    invoice = replace(base, buyer=replace(base.buyer, name=name))
    assert len(PdfReader(io.BytesIO(compile_pdf(invoice))).pages) == 1
