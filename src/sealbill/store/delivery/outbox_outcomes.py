"""What SMTP answered, written to the outbox: per-recipient outcomes, bounces, claims.

Invariants: a message's (invoice, contact) claims are released only for the contacts it was
not delivered to (a delivered pair stays taken for the run); a bounce flags the contact and
appends it to the contact's history; a claim undone after a session fault restores the row
exactly as it was claimed (state, attempts, next attempt): the message is charged nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.delivery.outbox import OutboxItem, now
from sealbill.store.parties import contact_log
from sealbill.store.schema import contacts, outbox, outbox_recipients


def _set(conn: Connection, org_id: int, outbox_id: int, **values: Any) -> None:
    conn.execute(sa.update(outbox).where(outbox.c.organization_id == org_id,
                                         outbox.c.id == outbox_id)
                 .values(updated_at=now(), **values))


def release_claims(conn: Connection, outbox_id: int,
                   keep: Sequence[int] = ()) -> None:
    """Drop the message's (invoice, contact) claims but those of ``keep`` (the contacts it was
    delivered to: those pairs stay taken for the run)."""
    query = sa.delete(outbox_recipients).where(outbox_recipients.c.outbox_id == outbox_id)
    if keep:
        query = query.where(outbox_recipients.c.contact_id.not_in(list(keep)))
    conn.execute(query)


def flag_bounced(conn: Connection, org_id: int, bounced: Sequence[int], error: str, *,
                 method: str = "smtp", actor: str = "sealbill-sender") -> None:
    """The contacts a server refused permanently (``method`` ``smtp``: at RCPT; ``dsn``: a
    delivery status notification mailed back later): no later plan resolves them until
    someone looks (and each flag is in the contact's history)."""
    at = now()
    for contact_id in bounced:
        conn.execute(sa.update(contacts).where(contacts.c.organization_id == org_id,
                                               contacts.c.id == contact_id)
                     .values(bounced_at=at))
        contact_log.append(conn, org_id, contact_id, "bounced", actor, at,
                           method=method, reason=error[:500])


def clear_bounce(conn: Connection, org_id: int, contact_id: int, actor: str,
                 reason: str) -> None:
    """Lift a contact's bounced flag: later plans resolve it again; the clearing, who did it
    and why are in the contact's history."""
    at = now()
    conn.execute(sa.update(contacts).where(contacts.c.organization_id == org_id,
                                           contacts.c.id == contact_id)
                 .values(bounced_at=None))
    contact_log.append(conn, org_id, contact_id, "bounce_cleared", actor, at,
                       method="operator", reason=reason[:500])


def set_outcomes(conn: Connection, org_id: int, outbox_id: int,
                 outcomes: Mapping[str, Any]) -> None:
    """Rewrite a message's per-recipient outcomes only (a DSN learnt after the send: the
    status, attempts and claims stay as the send left them)."""
    _set(conn, org_id, outbox_id, recipient_outcomes=dict(outcomes))


def record_outcomes(conn: Connection, org_id: int, outbox_id: int, *, status: str,
                    outcomes: Mapping[str, Any], error: str | None,
                    next_attempt_at: datetime | None = None,
                    sent_at: datetime | None = None) -> None:
    """The message's status with its per-recipient outcomes (a partial delivery, a bounce)."""
    values: dict[str, Any] = {"status": status, "recipient_outcomes": dict(outcomes),
                              "last_error": None if error is None else error[:1000],
                              "next_attempt_at": next_attempt_at}
    if sent_at is not None:
        values["sent_at"] = sent_at
    _set(conn, org_id, outbox_id, **values)


def unclaim(conn: Connection, org_id: int, item: OutboxItem) -> None:
    """Undo a claim whose SMTP session could not even start (a relay or configuration fault):
    the row returns to the state and attempt count it was claimed from — the message was not
    tried, so it is charged nothing."""
    _set(conn, org_id, item.outbox_id, status=item.status, attempts=item.attempts,
         next_attempt_at=item.next_attempt_at)


def last_errors(conn: Connection, org_id: int, outbox_ids: Sequence[int]) -> dict[int, str]:
    if not outbox_ids:
        return {}
    return {int(i): str(e) for i, e in conn.execute(
        sa.select(outbox.c.id, outbox.c.last_error).where(
            outbox.c.organization_id == org_id, outbox.c.id.in_(list(outbox_ids))))
        if e is not None}
