"""Bounces learnt after the send (DSNs mailed back) and an operator clearing a bounce.

:func:`import_dsns` reads delivery status notifications (:mod:`sealbill.domain.dsn`) and
matches each to the message it reports on by the original Message-ID (the outbox row and its
envelope), and each per-recipient block to an address that message was actually sent to
(an address it was tried for at RCPT, or that a ledger row lists as having accepted it).

Invariants:
- only ``Action: failed`` with a 5.x.x status is a bounce: the recipient's outcome becomes
  ``bounced`` (stage ``dsn``, with the relay's earlier state kept) and, when the address is a
  contact, the contact is flagged bounced with the DSN in its history (sealed chain);
- a 4.x.x or ``delayed`` report is recorded on the recipient's outcome only: its state does not
  change, so nothing is re-sent and nobody is flagged;
- a DSN for an unknown message, or naming an address that message was never sent to, changes
  nothing and is reported as such; a recipient already bounced (at RCPT, or by an earlier DSN:
  the same DSN imported twice) is left as it is;
- the message's status, attempts and claims stay as the send left them (the relay accepted
  it: the ledger row stands); every change is audited.

:func:`clear_bounce` lifts a contact's bounced flag with a reason, in the contact's history and
the audit log; later plans resolve the contact again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field, StringConstraints
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit
from sealbill.app.contacts import contact_row, view
from sealbill.app.context import ACCOUNTS_WRITE, RUNS_WRITE, Actor
from sealbill.app.errors import StateError
from sealbill.domain import recipient_outcomes as rcpts
from sealbill.domain.dsn import Dsn, DsnRecipient, NotADsn, parse_dsn
from sealbill.inputs.models import Model, parse
from sealbill.inputs.usage import VoidIn
from sealbill.store.delivery import outbox_outcomes
from sealbill.store.schema import contacts, delivery_envelopes, delivery_ledger, invoices, outbox

MAX_DSN_BYTES = 5_000_000  # a DSN returning the whole message (a PDF attached) fits
MAX_DSNS = 100
BOUNCED, DELAYED, NOTED = "bounced", "delayed_recorded", "recorded"
ALREADY, UNKNOWN, NOT_SENT, NOT_DSN = ("already_recorded", "unknown_message",
                                       "not_sent_to_that_address", "not_a_dsn")


def import_dsns(engine: Engine, actor: Actor, org_id: int,
                mails: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """``mails``: (source name, raw bytes) of each mail; one transaction per mail. Returns the
    counts and one result per (mail, recipient block)."""
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    results: list[dict[str, Any]] = []
    for source, data in mails:
        try:
            dsn = parse_dsn(data)
        except NotADsn as exc:
            results.append({"source": source, "result": NOT_DSN, "detail": str(exc)})
            continue
        with engine.begin() as conn:
            results += [{"source": source, **r} for r in _apply(conn, actor, org_id, dsn)]
    counts = {name: sum(1 for r in results if r["result"] == name)
              for name in (BOUNCED, DELAYED, NOTED, ALREADY, UNKNOWN, NOT_SENT, NOT_DSN)}
    with engine.begin() as conn:  # who imported which mails, even when they changed nothing
        audit.record(conn, actor, org_id, "bounces.import", "organization", str(org_id),
                     after={"mails": [source for source, _ in mails][:100], **counts})
    return {"mails": len(mails), **counts, "results": results}


class DsnMailsIn(Model):
    """The API's JSON form of ``POST /v1/bounces``: the DSN mails as text (RFC 5322)."""

    messages: Annotated[list[Annotated[str, StringConstraints(
        min_length=1, max_length=MAX_DSN_BYTES)]], Field(min_length=1, max_length=MAX_DSNS)]


def dsn_mails(data: Any) -> list[tuple[str, bytes]]:
    """(source, bytes) of each mail of the JSON form, named ``messages[i]``."""
    mails = parse(DsnMailsIn, data, "bounces").messages
    return [(f"messages[{i}]", m.encode("utf-8", "surrogateescape")) for i, m in
            enumerate(mails)]


def _message(conn: Connection, org_id: int, message_id: str) -> Any:
    return conn.execute(
        sa.select(outbox.c.id, outbox.c.message_id, outbox.c.recipient_outcomes,
                  delivery_envelopes.c.recipients, invoices.c.number,
                  invoices.c.account_reference)
        .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
        .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
        .where(outbox.c.organization_id == org_id, outbox.c.message_id == message_id)).first()


def _sent_to(conn: Connection, org_id: int, row: Any) -> dict[str, int | None]:
    """Every address the message was actually sent to (key -> contact id, None for the
    archive copy): tried at RCPT (its outcomes) or listed by a ledger row."""
    contact_of = {rcpts.key(str(r["email"])): int(r["contact_id"])
                  for r in row.recipients or () if r.get("contact_id") is not None}
    addresses = set(row.recipient_outcomes or {})
    for (listed,) in conn.execute(sa.select(delivery_ledger.c.recipients).where(
            delivery_ledger.c.organization_id == org_id,
            delivery_ledger.c.message_id == row.message_id)):
        addresses |= {rcpts.key(str(r["email"])) for r in listed or ()}
    return {address: contact_of.get(address) for address in addresses}


def _apply(conn: Connection, actor: Actor, org_id: int, dsn: Dsn) -> list[dict[str, Any]]:
    row = None if dsn.message_id is None else _message(conn, org_id, dsn.message_id)
    if row is None:
        why = ("no Message-ID in the returned headers" if dsn.message_id is None else
               f"no message {dsn.message_id} was sent by this organization")
        return [_result(dsn, r, UNKNOWN, why) for r in dsn.recipients]
    sent_to = _sent_to(conn, org_id, row)
    outcomes = {k: dict(v) for k, v in (row.recipient_outcomes or {}).items()}
    at = datetime.now(UTC).isoformat()
    results, bounced = [], []
    for r in dsn.recipients:
        address = next((rcpts.key(a) for a in (r.original_recipient, r.final_recipient)
                        if a and rcpts.key(a) in sent_to), None)
        if address is None:
            results.append(_result(dsn, r, NOT_SENT, f"message {dsn.message_id} was not sent "
                                   f"to {r.final_recipient}; nothing changed", row))
            continue
        mine = outcomes.get(address, {})
        report = {"action": r.action, "status": r.status, "reply": r.diagnostic[:300],
                  "reporting_mta": dsn.reporting_mta, "at": at}
        if r.permanent_failure:
            if mine.get("state") == rcpts.BOUNCED:  # by this DSN, another, or at RCPT
                results.append(_result(dsn, r, ALREADY, "this recipient's bounce is already "
                                       "recorded", row))
                continue
            outcomes[address] = {"state": rcpts.BOUNCED, "code": r.reply_code,
                                 "reply": r.diagnostic[:300], "at": at, "stage": "dsn",
                                 "status": r.status,
                                 # no outcome stored: a ledger row lists it as delivered
                                 "relay_state": mine.get("state", rcpts.DELIVERED)}
            contact_id = sent_to[address]
            if contact_id is not None:
                bounced.append(contact_id)
            results.append(_result(dsn, r, BOUNCED, "contact flagged bounced" if contact_id
                                   else "recorded (not a contact: the archive copy)", row))
        else:
            # no outcome stored: a ledger row lists it as delivered (and a recipient without a
            # state would look pending: a retry would send it again)
            outcomes[address] = {"state": rcpts.DELIVERED, **mine, "dsn": report}
            kind = DELAYED if r.delayed else NOTED
            results.append(_result(dsn, r, kind, "recorded; nothing re-sent, nobody flagged",
                                   row))
    changed = [r for r in results if r["result"] in (BOUNCED, DELAYED, NOTED)]
    if changed:
        outbox_outcomes.set_outcomes(conn, org_id, int(row.id), outcomes)
        outbox_outcomes.flag_bounced(conn, org_id, bounced, _reason(dsn, outcomes, bounced,
                                                                    sent_to),
                                     method="dsn", actor=actor.name)
        audit.record(conn, actor, org_id, "message.dsn", "message", str(row.message_id),
                     after={"reporting_mta": dsn.reporting_mta, "recipients": [
                         {k: r[k] for k in ("recipient", "action", "status", "result")}
                         for r in changed]})
    return results


def _reason(dsn: Dsn, outcomes: dict[str, Any], bounced: list[int],
            sent_to: dict[str, int | None]) -> str:
    replies = [f"{a}: {outcomes[a]['status']} {outcomes[a]['reply']}"
               for a, c in sent_to.items() if c in bounced and a in outcomes]
    return f"DSN from {dsn.reporting_mta} for {dsn.message_id}: " + "; ".join(replies)


def _result(dsn: Dsn, r: DsnRecipient, result: str, detail: str, row: Any = None
            ) -> dict[str, Any]:
    return {"message_id": dsn.message_id, "invoice": row.number if row else None,
            "account": row.account_reference if row else None,
            "recipient": r.final_recipient, "action": r.action, "status": r.status,
            "result": result, "detail": detail}


def clear_bounce(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any
                 ) -> dict[str, Any]:
    """Clear a contact's bounced flag (``data``: ``{"reason": ...}``); a contact that is not
    flagged is a :class:`StateError`, nothing written."""
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    reason = parse(VoidIn, data, "clear bounce").reason
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        if row["bounced_at"] is None:
            raise StateError(f"contact {row['email']!r} is not flagged as bounced")
        before = view(conn, org_id, row)
        outbox_outcomes.clear_bounce(conn, org_id, int(row["id"]), actor.name, reason)
        after = view(conn, org_id, conn.execute(sa.select(contacts).where(
            contacts.c.id == row["id"])).one()._mapping)
        audit.record(conn, actor, org_id, "contact.clear_bounce", "contact", after["id"],
                     before={"bounced_at": before["bounced_at"]},
                     after={"bounced_at": None, "reason": reason})
    return after
