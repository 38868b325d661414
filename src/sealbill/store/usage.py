"""Usage events: idempotent bulk ingestion and streaming reads per account.

Invariants:
- an event id is stored once per organization (unique constraint); the same id with the
  same payload digest is a no-op, with another digest a :class:`ConflictingEvent`;
- ingestion runs in the caller's transaction, so a file is applied whole or not at all;
- reads stream in (account, metric, time) order, so rating holds one account at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.schema import usage_events

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    account_id: int
    event_id: str
    metric_code: str
    occurred_at: datetime
    value: Decimal | None
    properties: dict[str, str]
    payload_digest: str
    where: str = ""  # "line 12" of the source file, for error messages


class ConflictingEvent(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} event id(s) already stored with another payload")
        self.problems = problems


def ingest(conn: Connection, org_id: int, events: Sequence[StoredEvent]) -> tuple[int, int]:
    """Store new events; returns (inserted, already present with the same payload)."""
    inserted = duplicates = 0
    conflicts: list[str] = []
    for start in range(0, len(events), CHUNK):
        chunk = events[start:start + CHUNK]
        known = dict(conn.execute(
            sa.select(usage_events.c.event_id, usage_events.c.payload_digest).where(
                usage_events.c.organization_id == org_id,
                usage_events.c.event_id.in_([e.event_id for e in chunk]))
        ).all())
        fresh = []
        for event in chunk:
            digest = known.get(event.event_id)
            if digest is None:
                fresh.append(event)
            elif digest == event.payload_digest:
                duplicates += 1
            else:
                conflicts.append(f"{event.where}: field 'event_id': {event.event_id!r} was "
                                 "already stored with a different payload")
        if fresh and not conflicts:
            conn.execute(sa.insert(usage_events), [_row(org_id, e) for e in fresh])
            inserted += len(fresh)
    if conflicts:
        raise ConflictingEvent(conflicts)
    return inserted, duplicates


def _row(org_id: int, event: StoredEvent) -> dict[str, Any]:
    return {
        "organization_id": org_id, "account_id": event.account_id, "event_id": event.event_id,
        "metric_code": event.metric_code, "occurred_at": event.occurred_at,
        "value": event.value, "properties": event.properties or None,
        "payload_digest": event.payload_digest,
    }


def stream_period(conn: Connection, org_id: int, start: datetime, end: datetime,
                  account_ids: Sequence[int] | None = None) -> Iterator[Any]:
    """Rows of the period ``[start, end)`` ordered by account, metric and time."""
    query = (
        sa.select(usage_events.c.account_id, usage_events.c.metric_code,
                  usage_events.c.occurred_at, usage_events.c.value,
                  usage_events.c.properties, usage_events.c.event_id)
        .where(usage_events.c.organization_id == org_id,
               usage_events.c.occurred_at >= start, usage_events.c.occurred_at < end)
        .order_by(usage_events.c.account_id, usage_events.c.metric_code,
                  usage_events.c.occurred_at, usage_events.c.id)
    )
    if account_ids is not None:
        query = query.where(usage_events.c.account_id.in_(list(account_ids)))
    yield from conn.execute(query, execution_options={"yield_per": 5000})


def canonical_properties(properties: dict[str, str]) -> str:
    return json.dumps(properties, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
