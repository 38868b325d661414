"""The send-time guard on hand-made facts: each rule can fail, and missing facts refuse."""

from __future__ import annotations

import hashlib
import html
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sealbill.domain import guard
from sealbill.domain.identifiers import (
    IdentifierIndex,
    contains_identifier,
    is_token,
    names,
    tokens,
)
from sealbill.mail import mime
from sealbill.pipeline.delivery import examine
from sealbill.pipeline.delivery.identifier_search import AutomatonSearch
from sealbill.store.parties.records import Recipient

XML = (b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
       b'CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:'
       b'ReusableAggregateBusinessInformationEntity:100"><rsm:ExchangedDocument><ram:ID>'
       b'F-000007</ram:ID></rsm:ExchangedDocument><rsm:SupplyChainTradeTransaction>'
       b'<ram:ApplicableHeaderTradeAgreement><ram:BuyerTradeParty><ram:ID>A0007</ram:ID>'
       b'<ram:Name>Client 7 SARL</ram:Name></ram:BuyerTradeParty>'
       b'</ram:ApplicableHeaderTradeAgreement></rsm:SupplyChainTradeTransaction>'
       b'</rsm:CrossIndustryInvoice>')
PDF = b"%PDF-fake " + XML
TEXT = b"Invoice F-000007 for account A0007\n"
HTML = b"<p>Invoice F-000007 for account A0007</p>\n"
ALICE = Recipient(11, "alice@client7.example")
MID = "<inv-7.env-70@seller.example>"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _extract(pdf: bytes) -> bytes:
    return pdf.split(b"%PDF-fake ", 1)[1]


def _message(recipients: list[Recipient] | None = None, text: bytes = TEXT,
             pdf: bytes = PDF) -> mime.Outgoing:
    return mime.build_message(
        sender=mime.Sender("Seller", "billing@seller.example"), recipients=recipients or [ALICE],
        display_names={11: "Alice"}, archive_email="archive@seller.example", message_id=MID,
        date=datetime(2026, 11, 1, tzinfo=UTC),
        content=mime.Content("Facture F-000007", text, HTML, pdf, "facture-F-000007.pdf"))


ENVELOPE = guard.Envelope(run_id=3, envelope_id=70, invoice_id=7, account_id=7,
                          recipients=((11, "alice@client7.example"),),
                          attachment_sha256=_sha(PDF))
FRESH = guard.Fresh(
    verified_contacts=frozenset({(11, "alice@client7.example")}), invoice_account_id=7,
    invoice_run_id=3, invoice_status="finalized", invoice_number="F-000007",
    account_reference="A0007", buyer_name="Client 7 SARL", pdf_sha256=_sha(PDF),
    text_sha256=_sha(TEXT), html_sha256=_sha(HTML), archive_email="archive@seller.example",
    message_id=MID, pair_claims={11: 0}, claimed_invoices={11: 0}, explained_invoices={11: 1},
    xml_sha256=_sha(XML))
# the search the sender uses (the token index is its reference: test_identifier_search.py)
INDEX = AutomatonSearch(IdentifierIndex.build([("reference", "A0007", "account:7"),
                                               ("reference", "A0008", "account:8"),
                                               ("number", "F-000007", "invoice:7"),
                                               ("number", "F-000008", "invoice:8")]))


def _check(envelope: guard.Envelope = ENVELOPE, fresh: guard.Fresh = FRESH,
           out: mime.Outgoing | None = None) -> list[guard.Violation]:
    out = out or _message()
    return examine.check(envelope, fresh, guard.Outgoing(out.data, out.rcpt_to), INDEX, _extract)


def _rules(violations: list[guard.Violation]) -> set[str]:
    return {v.rule for v in violations}


def test_a_correct_message_passes() -> None:
    assert _check() == []


def test_a_recipient_no_longer_verified_is_refused() -> None:
    assert _rules(_check(fresh=replace(FRESH, verified_contacts=frozenset()))) == {"recipients"}


def test_an_invoice_of_another_account_or_run_is_refused() -> None:
    assert "recipients" in _rules(_check(fresh=replace(FRESH, invoice_account_id=8)))
    assert "recipients" in _rules(_check(fresh=replace(FRESH, invoice_run_id=2)))


def test_an_extra_smtp_recipient_or_a_bcc_header_is_refused() -> None:
    out = _message()
    extra = mime.Outgoing(out.message_id, out.mail_from, (*out.rcpt_to, "eve@evil.example"),
                          out.data)
    assert "headers" in _rules(_check(out=extra))
    injected = out.data.replace(b"\r\nSubject:", b"\r\nBcc: eve@evil.example\r\nSubject:", 1)
    bcc = mime.Outgoing(out.message_id, out.mail_from, out.rcpt_to, injected)
    violations = _check(out=bcc)
    assert any("Bcc" in v.message for v in violations)


def test_to_header_different_from_the_envelope_is_refused() -> None:
    bob = Recipient(12, "bob@client8.example")
    violations = _check(out=_message([ALICE, bob]))
    assert any("To: differs" in v.message for v in violations)


def test_another_accounts_identifier_in_the_body_is_refused() -> None:
    text = TEXT + b"Also: account A0008, invoice F-000008\n"
    violations = _check(fresh=replace(FRESH, text_sha256=_sha(text)), out=_message(text=text))
    found = [v for v in violations if "another account's identifier" in v.message]
    assert found and {f["value"] for f in found[0].evidence["found"]} == {"A0008", "F-000008"}


def test_another_invoices_xml_in_the_pdf_is_refused() -> None:
    pdf = PDF.replace(b"F-000007</ram:ID></rsm", b"F-000008</ram:ID></rsm")
    fresh = replace(FRESH, pdf_sha256=_sha(pdf))
    envelope = replace(ENVELOPE, attachment_sha256=_sha(pdf))
    violations = _check(envelope, fresh, _message(pdf=pdf))
    assert any("Factur-X XML is another" in v.message for v in violations)


def test_a_pdf_whose_digests_were_updated_but_whose_xml_is_not_the_planned_one_is_refused(
        ) -> None:
    # the same invoice and buyer, another amount: the PDF's stored and planned digests were
    # updated to match the new file; only the embedded XML's digest can tell
    pdf = PDF.replace(b"</rsm:SupplyChainTradeTransaction>",
                      b"<ram:Amount>999.00</ram:Amount></rsm:SupplyChainTradeTransaction>")
    fresh = replace(FRESH, pdf_sha256=_sha(pdf))
    envelope = replace(ENVELOPE, attachment_sha256=_sha(pdf))
    [violation] = _check(envelope, fresh, _message(pdf=pdf))
    assert violation.rule == "content" and set(violation.evidence) == {"embedded_xml"}
    assert violation.evidence["embedded_xml"]["rendered"] == _sha(XML)


def test_a_pdf_that_is_not_the_rendered_one_is_refused() -> None:
    assert any("rendered document" in v.message
               for v in _check(fresh=replace(FRESH, pdf_sha256="0" * 64)))


def test_run_limits_pair_twice_fan_in_and_cap() -> None:
    assert "run_limits" in _rules(_check(fresh=replace(FRESH, pair_claims={11: 1})))
    assert "run_limits" in _rules(_check(fresh=replace(FRESH, claimed_invoices={11: 1})))
    assert "run_limits" in _rules(_check(fresh=replace(FRESH, cap=0)))


@pytest.mark.parametrize("field", ["verified_contacts", "invoice_number", "pdf_sha256",
                                   "pair_claims", "explained_invoices", "xml_sha256"])
def test_a_missing_fact_refuses(field: str) -> None:
    violations = _check(fresh=replace(FRESH, **{field: None}))
    assert _rules(violations) == {"undecidable"}


def test_an_unreadable_xml_refuses() -> None:
    def broken(pdf: bytes) -> bytes:
        raise ValueError("no attachment")

    out = _message()
    violations = examine.check(ENVELOPE, FRESH, guard.Outgoing(out.data, out.rcpt_to), INDEX,
                             broken)
    assert any("no readable Factur-X XML" in v.message for v in violations)


def test_no_identifier_index_refuses() -> None:
    out = _message()
    assert _rules(examine.check(ENVELOPE, FRESH, guard.Outgoing(out.data, out.rcpt_to), None,
                              _extract)) == {"undecidable"}


@given(text=st.text(st.sampled_from("F-0 7A.;/&amp;<p> \n\u00e9x,"), max_size=40),
       identifier=st.text(st.sampled_from("F-07A. ,/&"), max_size=8))
@example(text="Account ACC-0001.", identifier="ACC-0001")
@example(text="Account ACC-00012", identifier="ACC-0001")
@example(text="a &amp; b", identifier="a & b")
def test_names_is_contains_identifier(text: str, identifier: str) -> None:
    """Both search occurrences; the reference tokenizes the whole text."""
    if identifier and is_token(identifier):
        reference = identifier in tokens(text)
    else:
        reference = bool(identifier) and identifier in html.unescape(text)
    assert names(html.unescape(text), identifier) == reference
    assert contains_identifier(text, identifier) == reference


def _tokens_before(text: str) -> set[str]:
    """identifiers.tokens as it was written before (the loop), for comparison."""
    import re

    found = set()
    for raw in re.findall(r"[\w.\-/]+", html.unescape(text)):
        token = raw.strip(".-/")
        if token:
            found.add(token)
    return found


@given(text=st.text(st.sampled_from("F-0 7A.;/&amp;<p> \n\u00e9x,-."), max_size=60))
def test_foreign_hits_with_tokens_given_is_foreign_hits(text: str) -> None:
    assert tokens(text) == _tokens_before(text)
    index = IdentifierIndex.build([("number", "F-0007", "invoice:7"),
                                   ("reference", "A07x", "account:1"),
                                   ("reference", "A 07", "account:2")])
    for own in (set(), {"invoice:7"}, {"account:2"}):
        assert index.foreign_hits(text, own, tokens(text)) == index.foreign_hits(text, own)


def test_a_credit_note_may_name_its_corrected_invoice_and_no_other() -> None:
    # AV-000009 corrects F-000007 (same account, same run): naming it is not a leak; naming
    # F-000008 (another account's invoice) still is.
    credit = replace(FRESH, invoice_number="AV-000009", corrected_invoice_id=7)
    envelope = replace(ENVELOPE, invoice_id=9)
    xml = XML.replace(b"F-000007</ram:ID>", b"AV-000009</ram:ID>")
    for corrected, expected in (("F-000007", set()), ("F-000008", {"content"})):
        text = f"Avoir AV-000009 corrigeant la facture {corrected}, compte A0007\n".encode()
        html = f"<p>Avoir AV-000009 / {corrected} / A0007</p>\n".encode()
        pdf = b"%PDF-fake " + xml
        fresh = replace(credit, pdf_sha256=_sha(pdf), text_sha256=_sha(text),
                        html_sha256=_sha(html), xml_sha256=_sha(xml))
        out = mime.build_message(
            sender=mime.Sender("Seller", "billing@seller.example"), recipients=[ALICE],
            display_names={11: "Alice"}, archive_email="archive@seller.example",
            message_id=MID, date=datetime(2026, 11, 1, tzinfo=UTC),
            content=mime.Content("Avoir n° AV-000009 corrigeant la facture n° F-000007",
                                 text, html, pdf, "avoir-AV-000009.pdf"))
        violations = examine.check(replace(envelope, attachment_sha256=_sha(pdf)), fresh,
                                   guard.Outgoing(out.data, out.rcpt_to), INDEX, _extract)
        assert _rules(violations) == expected, violations
