"""Reads the evidence a blast radius is computed from: ledger rows and contact history.

Invariants:
- the only sources are the append-only tables (``delivery_ledger``, ``contact_events``,
  ``link_corrections``) plus the accounts' descriptive columns: never ``contact_links``, whose
  current state says nothing of sending time;
- every statement is scoped to ``org_id``;
- a scope selects the messages matching *all* its criteria (window on ``sent_at`` as [from,
  to), run, message ids); an empty scope selects the organization's whole ledger;
- rows are converted to :mod:`sealbill.domain` values here, so the domain never sees SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.blast_radius import LedgerMessage, LinkCorrection, SentRecipient, Subject
from sealbill.domain.link_history import AddressEvent, LinkEvent, LinkHistory
from sealbill.store.schema import (
    accounts,
    contact_events,
    delivery_ledger,
    link_corrections,
    organizations,
)

_CHUNK = 500  # stay far below SQLite's bound-parameter limit on long IN lists


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def scope_filters(scope: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    """SQL conditions for an incident scope (``window``, ``run_id``, ``message_ids``)."""
    conditions: list[sa.ColumnElement[bool]] = []
    window = scope.get("window")
    if window:
        conditions.append(delivery_ledger.c.sent_at >= datetime.fromisoformat(window["from"]))
        conditions.append(delivery_ledger.c.sent_at < datetime.fromisoformat(window["to"]))
    if scope.get("run_id") is not None:
        conditions.append(delivery_ledger.c.run_id == int(scope["run_id"]))
    if scope.get("message_ids"):
        conditions.append(delivery_ledger.c.message_id.in_(list(scope["message_ids"])))
    return conditions


def ledger_messages(conn: Connection, org_id: int,
                    scope: Mapping[str, Any]) -> list[LedgerMessage]:
    rows = conn.execute(
        sa.select(delivery_ledger)
        .where(delivery_ledger.c.organization_id == org_id, *scope_filters(scope))
        .order_by(delivery_ledger.c.seq)
    )
    return [_message(cast(Mapping[str, Any], row._mapping)) for row in rows]


def _message(row: Mapping[str, Any]) -> LedgerMessage:
    categories = row["data_categories"]
    if isinstance(categories, Mapping):  # {category: value-or-flag}: the keys are the names
        categories = list(categories)
    return LedgerMessage(
        message_id=row["message_id"], run_id=row["run_id"], account_id=int(row["account_id"]),
        account_reference=row["account_reference"], invoice_id=int(row["invoice_id"]),
        invoice_number=row["invoice_number"],
        recipients=tuple(
            SentRecipient(int(r["contact_id"]) if r.get("contact_id") is not None else None,
                          str(r["email"]))
            for r in row["recipients"]),
        data_categories=tuple(str(c) for c in categories),
        sent_at=row["sent_at"], document_kind=str(row.get("document_kind") or "invoice"),
    )


def link_history(conn: Connection, org_id: int,
                 messages: Iterable[LedgerMessage]) -> LinkHistory:
    """The history of every contact a message named, or whose address it went to."""
    messages = list(messages)
    contact_ids = {r.contact_id for m in messages for r in m.recipients
                   if r.contact_id is not None}
    unnamed = sorted({r.email for m in messages for r in m.recipients if r.contact_id is None})
    for chunk in _chunks(unnamed):
        # A recipient without a contact id is judged by who had that address at the time.
        contact_ids.update(conn.execute(
            sa.select(contact_events.c.contact_id).where(
                contact_events.c.organization_id == org_id,
                contact_events.c.new_value.in_(chunk))).scalars())
    links: list[LinkEvent] = []
    addresses: list[AddressEvent] = []
    for chunk in _chunks(sorted(contact_ids)):
        rows = conn.execute(
            sa.select(contact_events).where(contact_events.c.organization_id == org_id,
                                            contact_events.c.contact_id.in_(chunk)))
        for row in rows:
            if row.event in ("added", "address_changed") and row.new_value:
                addresses.append(AddressEvent(int(row.id), int(row.contact_id), row.new_value,
                                              row.at))
            elif row.account_id is not None and row.role:
                links.append(LinkEvent(int(row.id), int(row.contact_id), int(row.account_id),
                                       row.role, row.event, row.at))
    return LinkHistory(links, addresses)


def corrections(conn: Connection, org_id: int) -> list[LinkCorrection]:
    """Every correction of the organization: a link judgement is not tied to one incident."""
    rows = conn.execute(sa.select(link_corrections)
                        .where(link_corrections.c.organization_id == org_id))
    return [LinkCorrection(int(r.id), int(r.contact_id), int(r.account_id), bool(r.entitled),
                           r.valid_from, r.valid_to, r.reason) for r in rows]


def subjects(conn: Connection, org_id: int, account_ids: Iterable[int]) -> dict[int, Subject]:
    out: dict[int, Subject] = {}
    for chunk in _chunks(sorted(set(account_ids))):
        rows = conn.execute(
            sa.select(accounts.c.id, accounts.c.reference, accounts.c.name, accounts.c.country,
                      accounts.c.is_business)
            .where(accounts.c.organization_id == org_id, accounts.c.id.in_(chunk)))
        for row in rows:
            out[int(row.id)] = Subject(int(row.id), row.reference, row.name, row.country,
                                       bool(row.is_business))
    return out


def archive_addresses(conn: Connection, org_id: int) -> list[str]:
    archive = conn.execute(sa.select(organizations.c.archive_email)
                           .where(organizations.c.id == org_id)).scalar()
    return [archive] if archive else []
