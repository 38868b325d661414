"""The audit log: one append-only row per change (who, what, before/after, from which key).

Invariant: :func:`record` is called by every mutating use case, in the transaction of the change
itself, so a change and its audit entry are committed together or not at all. Nothing in
sealbill updates or deletes an audit row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import ids
from sealbill.app.context import AUDIT_READ, Actor
from sealbill.app.errors import NotFound
from sealbill.store.schema import audit_log


def jsonable(value: Any) -> Any:
    """A value made of JSON types only (decimals and dates as strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal | date | datetime):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def record(conn: Connection, actor: Actor, org_id: int | None, action: str, kind: str,
           object_id: str, *, before: Any = None, after: Any = None) -> None:
    conn.execute(sa.insert(audit_log).values(
        organization_id=org_id, at=datetime.now(UTC), actor=actor.name,
        operator_id=actor.operator_id, api_key_prefix=actor.key_prefix, channel=actor.channel,
        action=action, object_kind=kind, object_id=object_id,
        before=jsonable(before), after=jsonable(after)))


def entries(engine: Engine, actor: Actor, org_id: int, *, action: str | None = None,
            object_id: str | None = None, limit: int = 50, cursor: str | None = None
            ) -> dict[str, Any]:
    """Audit entries of the organization, oldest first, a page at a time."""
    actor.require(AUDIT_READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = sa.select(audit_log).where(audit_log.c.organization_id == org_id)
        if action:
            query = query.where(audit_log.c.action == action)
        if object_id:
            query = query.where(audit_log.c.object_id == object_id)
        if cursor:
            query = query.where(audit_log.c.id > ids.decode(conn, org_id, "audit", cursor))
        rows = conn.execute(query.order_by(audit_log.c.id).limit(limit + 1)).all()
        items = [{"id": ids.encode(conn, org_id, "audit", r.id), "at": r.at, "actor": r.actor,
                  "api_key": r.api_key_prefix, "channel": r.channel, "action": r.action,
                  "object_kind": r.object_kind, "object_id": r.object_id, "before": r.before,
                  "after": r.after} for r in rows[:limit]]
    return page(items, limit, len(rows) > limit)


def page(items: list[dict[str, Any]], limit: int, more: bool) -> dict[str, Any]:
    """A page of a listing: the items and the cursor of the next page (None at the end)."""
    return {"items": items, "next_cursor": items[-1]["id"] if more and items else None}


__all__ = ["NotFound", "entries", "jsonable", "page", "record"]
