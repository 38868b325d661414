"""The kill switch: one row per organization, read before every message.

Invariant: ``is_paused`` reads the row inside the caller's transaction (no cache), so
``sealbill pause`` stops sending within one message; a missing row means "not paused".
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.schema import sending_switches

# Read before every message sent: built once, so each read reuses the compiled statement.
_PAUSED = sa.select(sending_switches.c.paused).where(
    sending_switches.c.organization_id == sa.bindparam("org"))


def is_paused(conn: Connection, org_id: int) -> bool:
    paused = conn.execute(_PAUSED, {"org": org_id}).scalar()
    return bool(paused)


def state(conn: Connection, org_id: int) -> dict[str, object]:
    row = conn.execute(
        sa.select(sending_switches).where(sending_switches.c.organization_id == org_id)
    ).first()
    if row is None:
        return {"paused": False, "changed_at": None, "changed_by": None, "reason": None}
    return {"paused": bool(row.paused), "changed_at": row.changed_at,
            "changed_by": row.changed_by, "reason": row.reason}


def set_paused(conn: Connection, org_id: int, paused: bool, *, actor: str,
               reason: str | None) -> None:
    at = datetime.now(UTC)
    updated = conn.execute(
        sa.update(sending_switches).where(sending_switches.c.organization_id == org_id)
        .values(paused=paused, changed_at=at, changed_by=actor, reason=reason)
    ).rowcount
    if not updated:
        conn.execute(sa.insert(sending_switches).values(
            organization_id=org_id, paused=paused, changed_at=at, changed_by=actor,
            reason=reason))
