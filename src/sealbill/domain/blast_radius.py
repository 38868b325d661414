"""Blast radius: whose data reached whom, judged recipient by recipient from the delivery ledger.

Each recipient of each ledger message is judged twice:

- *as recorded*: against the contact history as it stood at the message's ``sent_at``;
- *as corrected*: the same, except where an operator's link correction covers the (contact,
  account) pair at that instant (the typical case after a bad migration whose wrong links were
  recorded as verified).

Invariants:
- a recipient is entitled as recorded iff the ledger names a contact whose last link event for
  (contact, account, ``billing``) at or before ``sent_at`` is ``verified`` *and* whose address at
  that instant is the address the message went to; the controller's own archive address is
  entitled (it is not a disclosure); anything else is an exposure;
- a correction overrides only the pairs and instants it covers; when several cover, the latest
  recorded one (highest ``seq``) decides;
- entitlement is per (contact, account): a contact verified on forty accounts is entitled to
  each of them, so volume alone never counts as a leak;
- every (message, unintended recipient) pair is one :class:`Exposure`, listed exactly once;
  affected subjects, unintended recipients, counts, span and member states are derived from the
  exposures only, so they cannot disagree with them;
- pure: no I/O and no clock; the same inputs give the same, sorted, output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sealbill.domain.link_history import LinkHistory, normalize_address
from sealbill.domain.taxes import EU_MEMBER_STATES

#: The EEA states outside the EU, where the GDPR applies as well.
EEA_NON_EU: frozenset[str] = frozenset({"IS", "LI", "NO"})
EEA_STATES: frozenset[str] = EU_MEMBER_STATES | EEA_NON_EU

class Reason(StrEnum):
    """Why a recipient was, or was not, entitled to a message."""

    VERIFIED_BILLING_LINK = "verified_billing_link"
    CONTROLLER_ARCHIVE = "controller_archive"
    NEVER_LINKED = "never_linked"
    LINK_PENDING = "link_pending"
    LINK_REVOKED = "link_revoked"
    NOT_BILLING_ROLE = "not_a_billing_contact"
    ADDRESS_MISMATCH = "address_not_the_contacts"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    CORRECTED_ENTITLED = "operator_correction_entitled"
    CORRECTED_NOT_ENTITLED = "operator_correction_not_entitled"


@dataclass(frozen=True)
class SentRecipient:
    contact_id: int | None
    email: str


@dataclass(frozen=True)
class LedgerMessage:
    """One ledger row: a message accepted by the SMTP server for one account (the subject)."""

    message_id: str
    run_id: int | None
    account_id: int
    account_reference: str
    invoice_id: int
    invoice_number: str
    recipients: tuple[SentRecipient, ...]
    data_categories: tuple[str, ...]
    sent_at: datetime
    document_kind: str = "invoice"  # or "credit_note": what the message carried


@dataclass(frozen=True)
class LinkCorrection:
    """An operator's retroactive judgement of a (contact, account) pair over [from, to)."""

    seq: int
    contact_id: int
    account_id: int
    entitled: bool
    valid_from: datetime | None
    valid_to: datetime | None
    reason: str

    def covers(self, contact_id: int, account_id: int, at: datetime) -> bool:
        return (self.contact_id == contact_id and self.account_id == account_id
                and (self.valid_from is None or self.valid_from <= at)
                and (self.valid_to is None or at < self.valid_to))


@dataclass(frozen=True)
class Subject:
    """The data subject of a message: the account whose invoice it carried."""

    account_id: int
    reference: str
    name: str
    country: str
    is_business: bool


@dataclass(frozen=True)
class Verdict:
    entitled: bool
    reason: Reason
    note: str = ""


@dataclass(frozen=True)
class Judgement:
    message_id: str
    account_id: int
    recipient: SentRecipient
    sent_at: datetime
    as_recorded: Verdict
    as_corrected: Verdict


@dataclass(frozen=True)
class Exposure:
    """One message's data reaching one recipient who was not entitled to it."""

    sent_at: datetime
    message_id: str
    account_id: int
    account_reference: str
    invoice_number: str
    email: str
    contact_id: int | None
    data_categories: tuple[str, ...]
    reason: Reason
    document_kind: str = "invoice"


@dataclass(frozen=True)
class SubjectImpact:
    subject: Subject
    message_ids: tuple[str, ...]
    invoice_numbers: tuple[str, ...]
    recipients: tuple[str, ...]
    data_categories: tuple[str, ...]


@dataclass(frozen=True)
class RecipientImpact:
    email: str
    contact_ids: tuple[int, ...]
    account_references: tuple[str, ...]
    message_ids: tuple[str, ...]
    data_categories: tuple[str, ...]


@dataclass(frozen=True)
class RadiusView:
    """Everything derived from one view's exposures."""

    exposures: tuple[Exposure, ...]
    subjects: tuple[SubjectImpact, ...]
    recipients: tuple[RecipientImpact, ...]
    data_categories: tuple[str, ...]
    member_states: tuple[str, ...]
    other_countries: tuple[str, ...]
    first_sent_at: datetime | None
    last_sent_at: datetime | None

    @property
    def has_leak(self) -> bool:
        return bool(self.exposures)

    @property
    def subject_count(self) -> int:
        return len(self.subjects)

    @property
    def record_count(self) -> int:
        """Invoices (messages) that reached at least one unintended recipient."""
        return len({exposure.message_id for exposure in self.exposures})

    @property
    def records_by_kind(self) -> dict[str, int]:
        """Those messages per document kind: ``{"invoice": 3, "credit_note": 1}``."""
        kinds = {exposure.message_id: exposure.document_kind for exposure in self.exposures}
        return {kind: sum(1 for k in kinds.values() if k == kind)
                for kind in sorted(set(kinds.values()))}

    @property
    def disclosure_count(self) -> int:
        """(message, unintended recipient) pairs."""
        return len(self.exposures)

    @property
    def consumer_count(self) -> int:
        return sum(1 for impact in self.subjects if not impact.subject.is_business)


@dataclass(frozen=True)
class BlastRadius:
    messages_in_scope: int
    judgements: tuple[Judgement, ...]
    scope_first_sent_at: datetime | None
    scope_last_sent_at: datetime | None
    as_recorded: RadiusView
    as_corrected: RadiusView

    @property
    def effective(self) -> RadiusView:
        """The view the paperwork uses: history as the operator now says it should have been."""
        return self.as_corrected


def judge_as_recorded(history: LinkHistory, message: LedgerMessage, recipient: SentRecipient,
                      archive_addresses: frozenset[str] = frozenset()) -> Verdict:
    """The verdict on one recipient against the history of the time (see module invariants)."""
    if normalize_address(recipient.email) in archive_addresses:
        return Verdict(True, Reason.CONTROLLER_ARCHIVE)
    candidates = ([recipient.contact_id] if recipient.contact_id is not None
                  else history.contacts_at_address(recipient.email, message.sent_at))
    if not candidates:
        return Verdict(False, Reason.UNKNOWN_RECIPIENT)
    verdicts = [_judge_contact(history, message, cid, recipient.email) for cid in candidates]
    return next((v for v in verdicts if v.entitled), verdicts[0])


def _judge_contact(history: LinkHistory, message: LedgerMessage, contact_id: int,
                   email: str) -> Verdict:
    at = message.sent_at
    address = history.address(contact_id, at)
    if address is not None and address != normalize_address(email):
        return Verdict(False, Reason.ADDRESS_MISMATCH,
                       f"contact {contact_id} was {address} at sending time")
    state = history.link_state(contact_id, message.account_id, "billing", at)
    if state == "verified":
        return Verdict(True, Reason.VERIFIED_BILLING_LINK)
    if state == "pending":
        return Verdict(False, Reason.LINK_PENDING)
    if state == "revoked":
        return Verdict(False, Reason.LINK_REVOKED)
    if history.linked_in_another_role(contact_id, message.account_id, at):
        return Verdict(False, Reason.NOT_BILLING_ROLE)
    return Verdict(False, Reason.NEVER_LINKED)


def apply_corrections(recorded: Verdict, corrections: Iterable[LinkCorrection],
                      contact_id: int | None, account_id: int, at: datetime) -> Verdict:
    """The recorded verdict unless a correction covers the pair at ``at`` (latest wins)."""
    if contact_id is None:
        return recorded
    covering = [c for c in corrections if c.covers(contact_id, account_id, at)]
    if not covering:
        return recorded
    latest = max(covering, key=lambda correction: correction.seq)
    reason = Reason.CORRECTED_ENTITLED if latest.entitled else Reason.CORRECTED_NOT_ENTITLED
    return Verdict(latest.entitled, reason, latest.reason)


def compute(messages: Iterable[LedgerMessage], history: LinkHistory,
            corrections: Iterable[LinkCorrection], subjects: Mapping[int, Subject],
            archive_addresses: Iterable[str] = ()) -> BlastRadius:
    """Judge every recipient of every message in scope and derive both views."""
    archive = frozenset(normalize_address(address) for address in archive_addresses)
    ordered = sorted(messages, key=lambda m: (m.sent_at, m.message_id))
    corrections = tuple(corrections)
    judgements: list[Judgement] = []
    recorded: list[Exposure] = []
    corrected: list[Exposure] = []
    for message in ordered:
        for recipient in sorted(set(message.recipients), key=_recipient_key):
            as_recorded = judge_as_recorded(history, message, recipient, archive)
            as_corrected = apply_corrections(as_recorded, corrections, recipient.contact_id,
                                             message.account_id, message.sent_at)
            judgements.append(Judgement(message.message_id, message.account_id, recipient,
                                        message.sent_at, as_recorded, as_corrected))
            if not as_recorded.entitled:
                recorded.append(_exposure(message, recipient, as_recorded))
            if not as_corrected.entitled:
                corrected.append(_exposure(message, recipient, as_corrected))
    return BlastRadius(
        messages_in_scope=len(ordered),
        judgements=tuple(judgements),
        scope_first_sent_at=ordered[0].sent_at if ordered else None,
        scope_last_sent_at=ordered[-1].sent_at if ordered else None,
        as_recorded=derive_view(recorded, subjects),
        as_corrected=derive_view(corrected, subjects),
    )


def _recipient_key(recipient: SentRecipient) -> tuple[str, int]:
    # contact_id may be None (a recipient the sender could not name): sort it first.
    return normalize_address(recipient.email), recipient.contact_id or 0


def _exposure_key(exposure: Exposure) -> tuple[datetime, str, str]:
    return exposure.sent_at, exposure.message_id, normalize_address(exposure.email)


def _exposure(message: LedgerMessage, recipient: SentRecipient, verdict: Verdict) -> Exposure:
    return Exposure(message.sent_at, message.message_id, message.account_id,
                    message.account_reference, message.invoice_number, recipient.email,
                    recipient.contact_id, tuple(sorted(set(message.data_categories))),
                    verdict.reason, message.document_kind)


def derive_view(exposures: Iterable[Exposure], subjects: Mapping[int, Subject]) -> RadiusView:
    """Subjects, recipients, categories, span and states, all from the exposures alone."""
    items = tuple(sorted(exposures, key=_exposure_key))
    by_subject: dict[int, list[Exposure]] = defaultdict(list)
    by_recipient: dict[str, list[Exposure]] = defaultdict(list)
    for exposure in items:
        by_subject[exposure.account_id].append(exposure)
        by_recipient[normalize_address(exposure.email)].append(exposure)
    impacts = tuple(
        SubjectImpact(
            subject=subjects.get(account_id) or Subject(account_id, group[0].account_reference,
                                                        "", "", False),
            message_ids=_distinct(e.message_id for e in group),
            invoice_numbers=_distinct(e.invoice_number for e in group),
            recipients=_distinct(e.email for e in group),
            data_categories=_distinct(c for e in group for c in e.data_categories),
        )
        for account_id, group in sorted(by_subject.items(),
                                        key=lambda item: item[1][0].account_reference)
    )
    recipients = tuple(
        RecipientImpact(
            email=email,
            contact_ids=tuple(sorted({e.contact_id for e in group if e.contact_id is not None})),
            account_references=_distinct(e.account_reference for e in group),
            message_ids=_distinct(e.message_id for e in group),
            data_categories=_distinct(c for e in group for c in e.data_categories),
        )
        for email, group in sorted(by_recipient.items())
    )
    countries = {_country(impact.subject.country) for impact in impacts if impact.subject.country}
    return RadiusView(
        exposures=items,
        subjects=impacts,
        recipients=recipients,
        data_categories=_distinct(c for e in items for c in e.data_categories),
        member_states=tuple(sorted(countries & EEA_STATES)),
        other_countries=tuple(sorted(countries - EEA_STATES)),
        first_sent_at=items[0].sent_at if items else None,
        last_sent_at=items[-1].sent_at if items else None,
    )


def _country(code: str) -> str:
    # Greece's VAT prefix EL sometimes ends up in country fields; ISO says GR.
    text = code.strip().upper()
    return "GR" if text == "EL" else text


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))
