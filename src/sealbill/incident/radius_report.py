"""The blast radius as JSON-ready data and as CSV for legal.

Invariants:
- both renderings come from one :class:`BlastRadius`; neither recomputes anything;
- the CSV has one row per (message, recipient) that is an exposure in *either* view, with both
  verdicts side by side, so legal sees where the operator's corrections changed the picture;
- a cell that a spreadsheet would read as a formula is prefixed with an apostrophe;
- personal data appears only as far as the ledger holds it (addresses, references), never more.
"""

from __future__ import annotations

from typing import Any

from sealbill.domain.blast_radius import BlastRadius, RadiusView
from sealbill.incident.facts import when
from sealbill.outputs.csv_cells import csv_text

CSV_COLUMNS = ("sent_at", "message_id", "invoice_number", "account_reference", "account_name",
               "account_country", "recipient_email", "recipient_contact_id", "data_categories",
               "entitled_as_recorded", "reason_as_recorded", "entitled_as_corrected",
               "reason_as_corrected", "correction_note")


_KIND_WORDS = {"invoice": "invoice", "credit_note": "credit note"}


def summary_sentence(view: RadiusView, messages_in_scope: int) -> str:
    if not view.has_leak:
        return (f"No unintended recipient: all recipients of the {messages_in_scope} "
                "message(s) in scope were entitled.")
    kinds = view.records_by_kind
    documents = " and ".join(f"{n} {_KIND_WORDS.get(k, k)}(s)" for k, n in kinds.items())
    return (f"{documents} of {view.subject_count} customer(s) reached "
            f"{len(view.recipients)} unintended recipient(s) ({view.disclosure_count} "
            f"disclosure(s)) between {when(view.first_sent_at)} and {when(view.last_sent_at)}.")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def view_to_dict(view: RadiusView, messages_in_scope: int) -> dict[str, Any]:
    return {
        "has_leak": view.has_leak,
        "summary": summary_sentence(view, messages_in_scope),
        "counts": {"subjects": view.subject_count, "consumers": view.consumer_count,
                   "records": view.record_count, "disclosures": view.disclosure_count,
                   "unintended_recipients": len(view.recipients)},
        "records_by_kind": view.records_by_kind,
        "span": {"first_sent_at": _iso(view.first_sent_at),
                 "last_sent_at": _iso(view.last_sent_at)},
        "member_states": list(view.member_states),
        "other_countries": list(view.other_countries),
        "data_categories": list(view.data_categories),
        "subjects": [
            {"account_id": i.subject.account_id, "reference": i.subject.reference,
             "name": i.subject.name, "country": i.subject.country,
             "is_business": i.subject.is_business, "message_ids": list(i.message_ids),
             "invoice_numbers": list(i.invoice_numbers),
             "unintended_recipients": list(i.recipients),
             "data_categories": list(i.data_categories)}
            for i in view.subjects],
        "unintended_recipients": [
            {"email": r.email, "contact_ids": list(r.contact_ids),
             "account_references": list(r.account_references),
             "message_ids": list(r.message_ids), "data_categories": list(r.data_categories)}
            for r in view.recipients],
        "exposures": [
            {"sent_at": e.sent_at.isoformat(), "message_id": e.message_id,
             "account_id": e.account_id, "account_reference": e.account_reference,
             "invoice_number": e.invoice_number, "document_kind": e.document_kind,
             "email": e.email, "contact_id": e.contact_id,
             "data_categories": list(e.data_categories), "reason": e.reason.value}
            for e in view.exposures],
    }


def radius_to_dict(radius: BlastRadius) -> dict[str, Any]:
    return {
        "messages_in_scope": radius.messages_in_scope,
        "recipients_judged": len(radius.judgements),
        "scope_first_sent_at": _iso(radius.scope_first_sent_at),
        "scope_last_sent_at": _iso(radius.scope_last_sent_at),
        "effective_view": "as_corrected",
        "as_recorded": view_to_dict(radius.as_recorded, radius.messages_in_scope),
        "as_corrected": view_to_dict(radius.as_corrected, radius.messages_in_scope),
        "changed_by_corrections": [
            {"message_id": j.message_id, "email": j.recipient.email,
             "contact_id": j.recipient.contact_id, "as_recorded": j.as_recorded.reason.value,
             "as_corrected": j.as_corrected.reason.value, "note": j.as_corrected.note}
            for j in radius.judgements if j.as_recorded.entitled != j.as_corrected.entitled],
    }


def radius_csv(radius: BlastRadius) -> str:
    names = {i.subject.account_id: i.subject for view in (radius.as_recorded,
                                                            radius.as_corrected)
             for i in view.subjects}
    invoices = {e.message_id: e for view in (radius.as_recorded, radius.as_corrected)
                for e in view.exposures}
    rows = []
    for j in radius.judgements:
        if j.as_recorded.entitled and j.as_corrected.entitled:
            continue
        exposure = invoices[j.message_id]
        subject = names.get(j.account_id)
        rows.append((
            j.sent_at.isoformat(), j.message_id, exposure.invoice_number,
            exposure.account_reference, subject.name if subject else "",
            subject.country if subject else "", j.recipient.email,
            "" if j.recipient.contact_id is None else j.recipient.contact_id,
            ";".join(exposure.data_categories),
            _yes_no(j.as_recorded.entitled), j.as_recorded.reason.value,
            _yes_no(j.as_corrected.entitled), j.as_corrected.reason.value, j.as_corrected.note,
        ))
    # Legal opens this in a spreadsheet: a customer-supplied name starting with "=" must stay
    # text, not become a formula.
    return csv_text(CSV_COLUMNS, rows)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"
