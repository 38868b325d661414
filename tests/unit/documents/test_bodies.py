"""Mail bodies and subject: the facts the buyer needs, escaped, and no secret."""

from __future__ import annotations

from dataclasses import replace

import pytest
from jinja2 import UndefinedError

from sealbill.documents.bodies import (
    mail_bodies,
    mail_context,
    mail_parts,
    mail_subject,
    render_template,
)
from sealbill.domain.invoices import Invoice
from tests.unit.documents import samples
from tests.unit.documents.samples import BUYER_IBAN, BUYER_SIREN, SEPA


def with_seller_name(invoice: Invoice, name: str) -> Invoice:
    return replace(invoice, seller=replace(invoice.seller, name=name))


def test_html_body_escapes_user_text() -> None:
    invoice = with_seller_name(samples.domestic(), 'Evil <script>alert("x")</script> & Co')
    invoice = replace(invoice, account_reference='<img src=x onerror="y">')
    html, _ = mail_bodies(invoice)
    assert "<script>" not in html and "<img" not in html
    assert "Evil &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
    assert "&lt;img src=x onerror=&#34;y&#34;&gt;" in html


def test_text_body_keeps_user_text_literal() -> None:
    invoice = with_seller_name(samples.domestic(), "Müller & Söhne <GmbH>")
    _, text = mail_bodies(invoice)
    assert "Müller & Söhne <GmbH>" in text
    assert "&amp;" not in text and "&lt;" not in text


@pytest.mark.parametrize(("build", "amount", "due"), [
    (samples.domestic, "148,20\u00a0€", "30 avril 2025"),
    (samples.mixed_rates, "€2,111.88", "30 April 2025"),
])
def test_bodies_carry_amount_due_date_number_and_account_reference(
    build: object, amount: str, due: str
) -> None:
    invoice: Invoice = build()  # type: ignore[operator]
    for body in mail_bodies(invoice):
        for fact in (amount, due, invoice.number, invoice.account_reference):
            assert fact in body, fact


def test_bodies_say_how_to_pay_and_how_to_reach_the_seller() -> None:
    invoice = samples.domestic()
    html, text = mail_bodies(invoice)
    for body in (html, text):
        assert "FR76 3000 6000 0112 3456 7890 189" in body  # the seller's own IBAN, in full
        assert "AGRIFRPPXXX" in body
        assert invoice.seller.email and invoice.seller.email in body
        assert invoice.seller.phone and invoice.seller.phone in body
    card_html, card_text = mail_bodies(samples.mixed_rates())
    assert "Visa •••• 4242" in card_html and "Visa •••• 4242" in card_text


def test_bodies_hold_no_buyer_secret_nor_buyer_identifier() -> None:
    leaked = replace(samples.domestic(), payment_method=replace(SEPA, display=BUYER_IBAN))
    buyer = leaked.buyer
    for body in (*mail_bodies(leaked), mail_subject(leaked)):
        assert BUYER_IBAN not in body.replace(" ", "")
        assert BUYER_IBAN[-8:] not in body  # not even most of it
        for identifier in (BUYER_SIREN, buyer.vat_id, buyer.electronic_address, buyer.email):
            assert identifier and identifier not in body, identifier


def test_credit_note_body_has_no_due_date_and_names_the_original_invoice() -> None:
    invoice = samples.credit_note()
    html, text = mail_bodies(invoice)
    for body in (html, text):
        assert "Échéance" not in body
        assert "FA-2025-0001" in body and "AV-2025-0001" in body
        assert "Montant de l'avoir" in body or "Montant de l&#39;avoir" in body


def test_missing_template_value_raises_instead_of_printing_nothing() -> None:
    context = mail_context(samples.domestic())
    del context["amounts"]
    for name in ("mail_invoice.html.j2", "mail_invoice.txt.j2"):
        with pytest.raises(UndefinedError):
            render_template(name, context)


def test_subject_is_one_line_with_kind_number_seller_and_amount() -> None:
    invoice = with_seller_name(samples.domestic(), "Atelier\r\nBcc: victim@example.org")
    subject = mail_subject(invoice)
    assert "\n" not in subject and "\r" not in subject
    assert subject == "Facture FA-2025-0001 — Atelier Bcc: victim@example.org — 148,20\u00a0€"
    assert mail_subject(samples.credit_note("en")).startswith("Credit note AV-2025-0001")


@pytest.mark.parametrize(("locale", "title"), [
    ("fr", "Avoir n° AV-2025-0001 corrigeant la facture n° FA-2025-0001 — "),
    ("en", "Credit note AV-2025-0001 correcting invoice FA-2025-0001 — "),
])
def test_credit_note_subject_and_bodies_name_the_invoice_it_corrects(
        locale: str, title: str) -> None:
    credit = samples.credit_note(locale)
    assert mail_subject(credit).startswith(title)
    corrects = {"fr": "Il corrige la facture n° FA-2025-0001.",
                "en": "It corrects invoice FA-2025-0001."}[locale]
    for body in mail_bodies(credit):
        assert corrects in body


def test_bodies_and_subject_state_the_amount_due_after_the_credit_applied() -> None:
    invoice = replace(samples.domestic(), prepaid_minor=5000)  # 148.20 total, 50.00 credit
    html, text = mail_bodies(invoice)
    assert "Montant à payer : 98,20\u00a0€" in text.replace(" :", " :").replace(
        "\u00a0:", " :")
    assert "Avoir déduit : -50,00\u00a0€" in text.replace("\u00a0:", " :")
    assert "98,20\u00a0€" in html and "-50,00\u00a0€" in html
    assert mail_subject(invoice).endswith("— 98,20\u00a0€")
    plain = mail_bodies(samples.domestic())[1]  # no credit: the total, no credit line
    assert "Avoir déduit" not in plain and "Montant à payer" not in plain


@pytest.mark.parametrize("invoice", [samples.domestic(), samples.credit_note("en")],
                         ids=["invoice", "credit note"])
def test_the_parts_made_together_are_the_bodies_and_the_subject(invoice: Invoice) -> None:
    assert mail_parts(invoice, "https://portal.example/r/x") == (
        *mail_bodies(invoice, "https://portal.example/r/x"), mail_subject(invoice))
