"""The outbox: one row per message, its state machine, and the guard's fresh facts.

States: ``queued`` -> ``sending`` -> ``sent`` | ``failed_temporary`` (retried with backoff,
bounded) | ``failed_permanent`` (never retried; refused recipients flagged as bounced), and
``held`` (not sent: no verified recipient, or stopped by the guard). Each recipient's own
outcome is in ``recipient_outcomes`` (:mod:`sealbill.domain.recipient_outcomes`): ``sent``
means every recipient is delivered or bounced and at least one delivered.

Invariants:
- a row goes to ``sending`` (attempts + 1) in a transaction committed *before* the SMTP
  conversation starts, so after a crash the in-flight message is the row left in ``sending``,
  and it is resent with the same Message-ID;
- ``sent`` and its ledger row are written in one transaction;
- only one ``run send`` works on a run at a time (:mod:`sealbill.store.delivery.send_lock`); the
sender
  processes it forks each own a disjoint slice of the rows, and a claim is a compare-and-set on
  (status, attempts);
- the guard's facts (:func:`send_facts`) are read in the claiming transaction, from the
  tables themselves: contact links, the invoice row, the documents rows, the claims — with the
  kill switch and the run's status in the same statement.

Speed: the statements run for every message are prepared once
(:mod:`sealbill.store.delivery.prepared`:
compiled by SQLAlchemy, run on the DBAPI cursor), the fresh read is two statements (one row of
scalars; the per-contact rows, one statement per recipient count), and each is written so that
it reads by contact, account or invoice, never every row of the run or organization
(:func:`not_indexed`). A sender runs them for a whole batch at once
(:mod:`sealbill.store.delivery.outbox_batches`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.guard import DEFAULT_RECIPIENT_CAP, Fresh
from sealbill.store.db import not_indexed
from sealbill.store.delivery.plans import TEXT_KINDS
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import (
    billing_runs,
    contact_links,
    contacts,
    delivery_envelopes,
    documents,
    invoices,
    organizations,
    outbox,
    outbox_recipients,
    sending_switches,
)

RETRYABLE = ("queued", "sending", "failed_temporary")


@dataclass(frozen=True)
class OutboxItem:
    outbox_id: int
    envelope_id: int
    run_id: int
    message_id: str
    status: str
    attempts: int
    invoice_id: int
    account_id: int
    recipients: tuple[tuple[int, str], ...]
    attachment_sha256: str
    body_sha256: str
    is_canary: bool
    queued_at: datetime
    next_attempt_at: datetime | None = None
    outcomes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per recipient


def now() -> datetime:
    return datetime.now(UTC)


_ITEM_COLUMNS = (outbox.c.id, outbox.c.envelope_id, outbox.c.run_id, outbox.c.message_id,
                 outbox.c.status, outbox.c.attempts, outbox.c.next_attempt_at,
                 delivery_envelopes.c.invoice_id, delivery_envelopes.c.account_id,
                 delivery_envelopes.c.recipients, delivery_envelopes.c.attachment_sha256,
                 delivery_envelopes.c.body_sha256, delivery_envelopes.c.is_canary,
                 delivery_envelopes.c.created_at, outbox.c.recipient_outcomes)


def page(conn: Connection, org_id: int, run_id: int, *, statuses: Sequence[str],
         after: int, limit: int, canary: bool | None = None,
         part: tuple[int, int] | None = None) -> list[OutboxItem]:
    """At most ``limit`` rows of the run in ``statuses`` whose id is above ``after``, by id;
    ``part`` (k, n): only the ids equal to k modulo n (a forked sender's slice).

    A sender walks its rows a page at a time, so that its memory does not grow with the run.
    The rows are found by walking the primary key from ``after`` (the organization and run
    taken out of the index choice, :func:`not_indexed`): each page costs its own rows, not a
    scan and sort of every row of the run left (which would make the walk quadratic)."""
    query = (sa.select(*_ITEM_COLUMNS)
             .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
             .where(outbox.c.id > after, not_indexed(outbox.c.organization_id) == org_id,
                    not_indexed(outbox.c.run_id) == run_id, outbox.c.status.in_(list(statuses)))
             .order_by(outbox.c.id).limit(limit))
    if canary is not None:
        query = query.where(delivery_envelopes.c.is_canary == canary)
    if part is not None:
        query = query.where(outbox.c.id % part[1] == part[0])
    return [_item(row) for row in conn.execute(query)]


def items(conn: Connection, org_id: int, run_id: int, *, statuses: Sequence[str],
          canary: bool | None = None) -> list[OutboxItem]:
    query = (sa.select(outbox.c.id, outbox.c.envelope_id, outbox.c.run_id, outbox.c.message_id,
                       outbox.c.status, outbox.c.attempts, outbox.c.next_attempt_at,
                       delivery_envelopes.c.invoice_id, delivery_envelopes.c.account_id,
                       delivery_envelopes.c.recipients, delivery_envelopes.c.attachment_sha256,
                       delivery_envelopes.c.body_sha256, delivery_envelopes.c.is_canary,
                       delivery_envelopes.c.created_at, outbox.c.recipient_outcomes)
             .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
             .where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
                    outbox.c.status.in_(list(statuses)))
             .order_by(outbox.c.id))
    if canary is not None:
        query = query.where(delivery_envelopes.c.is_canary == canary)
    return [_item(row) for row in conn.execute(query)]


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        outbox_id=int(row.id), envelope_id=int(row.envelope_id), run_id=int(row.run_id),
        message_id=str(row.message_id), status=str(row.status), attempts=int(row.attempts),
        invoice_id=int(row.invoice_id), account_id=int(row.account_id),
        recipients=tuple((int(r["contact_id"]), str(r["email"])) for r in row.recipients),
        attachment_sha256=str(row.attachment_sha256), body_sha256=str(row.body_sha256),
        is_canary=bool(row.is_canary), queued_at=row.created_at,
        next_attempt_at=row.next_attempt_at, outcomes=row.recipient_outcomes or {})


def next_attempts(conn: Connection, org_id: int, run_id: int) -> list[datetime]:
    return [t for t in conn.execute(
        sa.select(outbox.c.next_attempt_at).where(
            outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
            outbox.c.status == "failed_temporary", outbox.c.next_attempt_at.is_not(None))
    ).scalars()]


_P = sa.bindparam
# Statements run for every message, built once (bind parameters).
CLAIM = (sa.update(outbox).where(outbox.c.organization_id == _P("org"),
                                 outbox.c.id == _P("outbox"),
                                 outbox.c.status == _P("from_status"),
                                 outbox.c.attempts == _P("from_attempts"))
          .values(status="sending", attempts=outbox.c.attempts + 1, updated_at=_P("at"),
                  next_attempt_at=None))
_CLAIM_COLUMNS = ("organization_id", "run_id", "outbox_id", "invoice_id", "contact_id", "email",
                  "created_at")
CLAIM_VALUES: dict[str, Any] = {name: _P(name) for name in _CLAIM_COLUMNS}
INSERT_CLAIMS = Prepared(sa.insert(outbox_recipients).values(CLAIM_VALUES))
_CLAIMED = sa.select(outbox_recipients.c.contact_id).where(
    outbox_recipients.c.outbox_id == _P("outbox"))
SENT = (sa.update(outbox).where(outbox.c.organization_id == _P("org"),
                                outbox.c.id == _P("outbox"))
         .values(status="sent", sent_at=_P("at"), last_error=None, updated_at=_P("at")))


_CLAIM_ONCE = Prepared(CLAIM)


def claim(conn: Connection, org_id: int, item: OutboxItem) -> bool:
    """``sending``, attempts + 1 — only if the row is still in the state it was read in."""
    return bool(_CLAIM_ONCE.run(conn, {"org": org_id, "outbox": item.outbox_id,
                                      "from_status": item.status, "from_attempts": item.attempts,
                                      "at": now()}))


def _document_sha(kind: str) -> Any:
    return sa.select(documents.c.sha256).where(
        documents.c.organization_id == _P("org"), documents.c.invoice_id == _P("invoice"),
        documents.c.kind == kind).scalar_subquery()


# The guard's fresh read, built once (bind parameters, so each execution reuses the compiled
# statement): one row of scalars, then one set of per-contact rows.
_FACTS_ROW = (
    sa.select(organizations.c.archive_email, outbox.c.message_id, invoices.c.account_id,
              invoices.c.run_id, invoices.c.status, invoices.c.number,
              invoices.c.account_reference, invoices.c.buyer_snapshot,
              invoices.c.corrects_invoice_id,
              *(_document_sha(kind).label(f"sha_{kind}") for kind in ("pdf", "html", "xml",
                                                                        *TEXT_KINDS)),
              # the kill switch and the run's status: read in the same statement
              sa.select(sending_switches.c.paused)
              .where(sending_switches.c.organization_id == _P("org"))
              .scalar_subquery().label("paused"),
              sa.select(billing_runs.c.status)
              .where(billing_runs.c.organization_id == _P("org"),
                     billing_runs.c.id == _P("run")).scalar_subquery().label("run_status"))
    .select_from(organizations.outerjoin(outbox, sa.and_(
        outbox.c.organization_id == organizations.c.id, outbox.c.id == _P("outbox")))
        .outerjoin(invoices, sa.and_(invoices.c.organization_id == organizations.c.id,
                                     invoices.c.id == _P("invoice"))))
    .where(organizations.c.id == _P("org")))
FACTS_ONCE = Prepared(_FACTS_ROW)


# ``not_indexed`` (store.db): SQLite keeps no statistics here and, for the per-message reads
# below, would pick the index on ``run_id`` or ``organization_id`` and walk every claim, invoice
# or link of the run for every message, O(n^2) a run (``test_send_reads.py`` checks the plans).

_NO_EMAIL = sa.cast(sa.null(), sa.String)


@lru_cache(maxsize=64)
def contact_rows(count: int) -> Prepared:
    """The guard's per-contact read for ``count`` recipients (parameters ``c0``, ``c1``...):
    one statement per count, so that it can be prepared (no expanding IN list)."""
    ids: list[Any] = [_P(f"c{i}", type_=contacts.c.id.type) for i in range(count)]
    return Prepared(sa.union_all(
        # the account's verified billing contacts, now (as parties.verified_billing_recipients)
        sa.select(sa.literal("verified"), contacts.c.id, sa.literal(0), contacts.c.email)
        .join(contact_links, contact_links.c.contact_id == contacts.c.id)
        .where(not_indexed(contact_links.c.organization_id) == _P("org"),
               contacts.c.organization_id == _P("org"),
               contact_links.c.account_id == _P("account"), contact_links.c.role == "billing",
               contact_links.c.status == "verified", contacts.c.bounced_at.is_(None)),
        # per recipient: other messages of the run that claimed (this invoice, this contact)
        sa.select(sa.literal("pair"), outbox_recipients.c.contact_id, sa.func.count(), _NO_EMAIL)
        .where(outbox_recipients.c.run_id == _P("run"),
               outbox_recipients.c.invoice_id == _P("invoice"),
               outbox_recipients.c.contact_id.in_(ids),
               outbox_recipients.c.outbox_id != _P("outbox"))
        .group_by(outbox_recipients.c.contact_id),
        # per recipient: the other invoices of the run already claimed for it
        sa.select(sa.literal("claimed"), outbox_recipients.c.contact_id,
                  sa.func.count(sa.distinct(outbox_recipients.c.invoice_id)), _NO_EMAIL)
        .where(not_indexed(outbox_recipients.c.run_id) == _P("run"),
               outbox_recipients.c.contact_id.in_(ids),
               outbox_recipients.c.invoice_id != _P("invoice"))
        .group_by(outbox_recipients.c.contact_id),
        # the claims this very message already holds (a resend after a crash keeps them)
        sa.select(sa.literal("mine"), outbox_recipients.c.contact_id, sa.literal(0), _NO_EMAIL)
        .where(outbox_recipients.c.outbox_id == _P("outbox")),
        # per recipient: the run's finalized invoices of the accounts it is verified billing for
        sa.select(sa.literal("explained"), contact_links.c.contact_id, sa.func.count(), _NO_EMAIL)
        .select_from(invoices.join(contact_links,
                                   contact_links.c.account_id == invoices.c.account_id))
        .where(not_indexed(invoices.c.run_id) == _P("run"), invoices.c.status == "finalized",
               not_indexed(contact_links.c.organization_id) == _P("org"),
               contact_links.c.contact_id.in_(ids),
               contact_links.c.role == "billing", contact_links.c.status == "verified")
        .group_by(contact_links.c.contact_id),
    ))


@dataclass(frozen=True)
class SendFacts:
    """Everything the claiming transaction reads, in two statements."""

    fresh: Fresh  # the guard's facts
    stop: str | None  # "paused" (kill switch), the run's status when not sending, or None: go
    claimed_by_this_message: frozenset[int]  # contact ids


def fresh_facts(conn: Connection, org_id: int, item: OutboxItem,
                cap: int = DEFAULT_RECIPIENT_CAP) -> Fresh:
    """The guard's facts, read now from the tables (two statements)."""
    return send_facts(conn, org_id, item, cap).fresh


def send_facts(conn: Connection, org_id: int, item: OutboxItem,
               cap: int = DEFAULT_RECIPIENT_CAP) -> SendFacts:
    """The guard's facts, the kill switch and run status, and this message's own claims."""
    params = facts_params(org_id, item)
    read = contact_rows(max(1, len(item.recipients)))
    return facts_of(item, FACTS_ONCE.first(conn, params), read.rows(conn, params), cap)


def facts_params(org_id: int, item: OutboxItem) -> dict[str, Any]:
    """The parameters of the two statements of the fresh read (:data:`FACTS_ONCE`,
    :func:`contact_rows` for the item's recipient count)."""
    return {"org": org_id, "outbox": item.outbox_id, "invoice": item.invoice_id,
            "run": item.run_id, "account": item.account_id,
            # no recipient (refused by the guard anyway): one id no contact has
            **{f"c{i}": cid for i, cid in enumerate([c for c, _ in item.recipients] or [-1])}}


def facts_of(item: OutboxItem, row: Any, per_contact: Sequence[Any],
             cap: int = DEFAULT_RECIPIENT_CAP) -> SendFacts:
    """:class:`SendFacts` from what the two statements of the fresh read returned."""
    verified: set[tuple[int, str]] = set()
    mine: set[int] = set()
    counts: dict[str, dict[int, int]] = {"pair": {}, "claimed": {}, "explained": {}}
    for tag, contact_id, n, email in per_contact:
        if tag == "verified":
            verified.add((int(contact_id), str(email)))
        elif tag == "mine":
            mine.add(int(contact_id))
        else:
            counts[str(tag)][int(contact_id)] = int(n)
    per_recipient = {tag: {cid: found.get(cid, 0) for cid, _ in item.recipients}
                     for tag, found in counts.items()}
    inv = row if row is not None and row.account_id is not None else None
    buyer = (inv.buyer_snapshot or {}) if inv is not None else {}
    texts = {sha for sha in (row.sha_txt, row.sha_text) if sha is not None} if row else set()
    fresh = Fresh(
        verified_contacts=frozenset(verified),
        invoice_account_id=None if inv is None else int(inv.account_id),
        invoice_run_id=None if inv is None or inv.run_id is None else int(inv.run_id),
        invoice_status=None if inv is None else str(inv.status),
        invoice_number=None if inv is None else inv.number,
        account_reference=None if inv is None else inv.account_reference,
        buyer_name=buyer.get("name"),
        pdf_sha256=row.sha_pdf if row else None, html_sha256=row.sha_html if row else None,
        # stored as "txt" or "text": two differing text bodies leave the guard undecided
        text_sha256=texts.pop() if len(texts) == 1 else None,
        archive_email=row.archive_email if row else None,
        message_id=row.message_id if row else None,
        pair_claims=per_recipient["pair"], claimed_invoices=per_recipient["claimed"],
        explained_invoices=per_recipient["explained"], cap=cap,
        xml_sha256=row.sha_xml if row else None,
        corrected_invoice_id=None if inv is None or inv.corrects_invoice_id is None
        else int(inv.corrects_invoice_id))
    if row is None or row.run_status is None:
        stop: str | None = "missing"
    elif row.paused:
        stop = "paused"
    else:
        stop = None if row.run_status == "sending" else str(row.run_status)
    return SendFacts(fresh, stop, frozenset(mine))


def record_claims(conn: Connection, org_id: int, item: OutboxItem,
                  have: frozenset[int] | None = None) -> None:
    """The (invoice, contact) pairs this message takes; a resend keeps its existing claims
    (``have``: the contact ids it already claimed, when the caller read them already)."""
    if have is None:
        have = frozenset(conn.execute(_CLAIMED, {"outbox": item.outbox_id}).scalars())
    INSERT_CLAIMS.run_many(conn, claim_rows(org_id, item, have, now()))


def claim_rows(org_id: int, item: OutboxItem, have: frozenset[int],
               at: datetime) -> list[dict[str, Any]]:
    """The ``outbox_recipients`` rows of the pairs ``item`` takes: its recipients but those
    whose pair it holds already (``have``)."""
    return [{"organization_id": org_id, "run_id": item.run_id, "outbox_id": item.outbox_id,
             "invoice_id": item.invoice_id, "contact_id": cid, "email": email,
             "created_at": at} for cid, email in item.recipients if cid not in have]


def _set(conn: Connection, org_id: int, outbox_id: int, **values: Any) -> None:
    conn.execute(sa.update(outbox).where(outbox.c.organization_id == org_id,
                                         outbox.c.id == outbox_id)
                 .values(updated_at=now(), **values))


def mark_held(conn: Connection, org_id: int, outbox_id: int, reason: str) -> None:
    _set(conn, org_id, outbox_id, status="held", last_error=reason[:1000])


def mark_set_aside(conn: Connection, org_id: int, outbox_id: int, *, by: str, reason: str,
                   evidence: Mapping[str, Any] | None = None) -> None:
    """Exclude the message from the run (``set_aside``) with who, why and the evidence; its
    claims are released (nothing was sent). Only ``run retry`` (or ``resume`` for a message
    the guard set aside and no operator confirmed) queues it again, for a fresh guard check."""
    values: dict[str, Any] = {"status": "set_aside", "last_error": reason[:1000],
                              "set_aside_at": now(), "set_aside_by": by[:100],
                              "set_aside_reason": reason[:1000]}
    if evidence is not None:
        values["set_aside_evidence"] = json.loads(json.dumps(evidence, default=str))
    _set(conn, org_id, outbox_id, **values)
    conn.execute(sa.delete(outbox_recipients).where(outbox_recipients.c.outbox_id == outbox_id))
