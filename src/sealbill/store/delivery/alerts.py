"""Alerts: what stopped a run (a guard violation, a failed canary, SMTP failing), with evidence.

Invariant: an alert is written in the same transaction that halts or holds what it explains,
so a halted run always has the alert that says why; it is resolved, never deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store import stage_events
from sealbill.store.db import inserted_id
from sealbill.store.schema import alerts


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def record(conn: Connection, org_id: int, *, cause: str, message: str,
           evidence: Mapping[str, Any], run_id: int | None = None,
           envelope_id: int | None = None) -> int:
    at = datetime.now(UTC)
    alert_id = inserted_id(conn.execute(sa.insert(alerts).values(
        organization_id=org_id, run_id=run_id, envelope_id=envelope_id, cause=cause[:60],
        message=message[:2000], evidence=_jsonable(evidence), created_at=at,
    )))
    stage_events.publish(conn, org_id, stage_events.ALERT_RECORDED, {
        "alert_id": alert_id, "run_id": run_id, "cause": cause[:60],
        "message": message[:2000], "created_at": at})
    return alert_id


def open_alerts(conn: Connection, org_id: int, run_id: int | None = None) -> list[dict[str, Any]]:
    query = sa.select(alerts).where(alerts.c.organization_id == org_id,
                                    alerts.c.resolved_at.is_(None)).order_by(alerts.c.id)
    if run_id is not None:
        query = query.where(alerts.c.run_id == run_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def resolve(conn: Connection, org_id: int, run_id: int, *, actor: str) -> int:
    return int(conn.execute(
        sa.update(alerts).where(alerts.c.organization_id == org_id, alerts.c.run_id == run_id,
                                alerts.c.resolved_at.is_(None))
        .values(resolved_at=datetime.now(UTC), resolved_by=actor)
    ).rowcount)



def note(conn: Connection, org_id: int, *, cause: str, message: str, actor: str,
         evidence: Mapping[str, Any], run_id: int | None = None,
         envelope_id: int | None = None) -> int:
    """An operator's act, kept beside the alerts as an already-resolved row (the audit trail
    of set-asides and retries): it never shows among the open alerts."""
    at = datetime.now(UTC)
    return inserted_id(conn.execute(sa.insert(alerts).values(
        organization_id=org_id, run_id=run_id, envelope_id=envelope_id, cause=cause[:60],
        message=message[:2000], evidence=_jsonable(evidence), created_at=at,
        resolved_at=at, resolved_by=actor[:100])))
