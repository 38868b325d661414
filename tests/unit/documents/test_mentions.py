"""French rules derived from the Invoice: what makes an invoice renderable, notes, masking."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from sealbill.documents.mentions import (
    check_renderable,
    legal_notes,
    mask_display,
    rate_code,
)
from sealbill.domain.invoices import DocumentKind, Invoice
from tests.unit.documents import samples


def problems_of(invoice: Invoice) -> str:
    return " | ".join(check_renderable(invoice))


def test_the_sample_corpus_is_renderable() -> None:
    for name, build in samples.CORPUS.items():
        assert check_renderable(build()) == [], name


@pytest.mark.parametrize(("change", "rule"), [
    (lambda i: replace(i, number="FA 2025 01"), "BR-FR-01/02"),
    (lambda i: replace(i, business_process="Z9"), "BR-FR-08"),
    (lambda i: replace(i, due_date=i.issue_date.replace(day=1)), "BR-FR-CO-07"),
    (lambda i: replace(i, currency="USD"), "BR-FR-CO-12"),  # VAT in USD, no EUR amount
    (lambda i: replace(i, seller=replace(i.seller, legal_id=None)), "BR-FR-10"),
    (lambda i: replace(i, seller=replace(i.seller, siret="99999999900017")), "SIRET"),
    (lambda i: replace(i, buyer=replace(i.buyer, electronic_address=None, email=None)),
     "BR-FR-12"),
    (lambda i: replace(i, seller=replace(i.seller, electronic_address=None, email=None)),
     "BR-FR-13"),
    (lambda i: replace(i, seller=replace(i.seller, vat_id=None)), "BR-S-02"),
])
def test_invoices_that_would_be_invalid_are_refused(change: object, rule: str) -> None:
    invoice = change(samples.domestic())  # type: ignore[operator]
    assert rule in problems_of(invoice)


def test_reverse_charge_needs_the_buyer_vat_id() -> None:
    invoice = samples.reverse_charge()
    assert "BR-AE-02" in problems_of(replace(invoice, buyer=replace(invoice.buyer, vat_id=None)))


def test_a_credit_note_needs_the_corrected_invoice_number_and_date() -> None:
    note = samples.credit_note()
    assert "BT-26" in problems_of(replace(note, corrected_invoice_date=None))
    assert "corrected invoice number" in problems_of(replace(note, corrected_invoice_number=None))
    assert note.kind is DocumentKind.CREDIT_NOTE and check_renderable(note) == []


def test_a_non_french_vat_rate_is_refused() -> None:
    invoice = samples.build_invoice("FA-2025-0100", [samples.line(1, "x", "1", "10", rate="19")])
    assert "BR-FR-16" in problems_of(invoice)


def test_mandatory_notes_come_first_once_each_and_the_invoice_text_wins() -> None:
    invoice = replace(samples.domestic(), notes=(
        ("AAB", "Escompte 2 % à 8 jours."), ("AAB", "second"), ("BAR", "B2B")))
    notes = legal_notes(invoice)
    assert [code for code, _ in notes] == ["PMT", "PMD", "AAB", "BAR"]
    assert dict(notes)["AAB"] == "Escompte 2 % à 8 jours."


def test_recovery_fee_applies_to_businesses_only() -> None:
    assert "40 €" in dict(legal_notes(samples.domestic()))["PMT"]
    assert "non applicable" in dict(legal_notes(samples.consumer()))["PMT"]


@pytest.mark.parametrize(("display", "hidden"), [
    ("FR1420041010050500013M02606", "20041010050500013M"),
    ("FR14 2004 1010 0505 0001 3M02 606", "2004 1010 0505"),
    ("Visa 4242424242424242", "424242424242"),
])
def test_full_account_numbers_are_masked(display: str, hidden: str) -> None:
    masked = mask_display(display)
    assert hidden not in masked and hidden.replace(" ", "") not in masked.replace(" ", "")
    assert "••••" in masked


def test_already_masked_displays_are_kept() -> None:
    for display in ("Visa •••• 4242", "FR14 •••• •••• 2606", "Virement"):
        assert mask_display(display) == display


def test_vat_rates_are_written_as_french_ctc_wants() -> None:
    cases = {"20.00": "20", "5.50": "5.5", "0.00": "0", "2.1": "2.1", "10": "10"}
    assert {k: rate_code(Decimal(k)) for k in cases} == cases
