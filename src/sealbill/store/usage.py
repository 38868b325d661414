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
from datetime import UTC, datetime
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
    """Store new events; returns (inserted, already present with the same payload).

    Events are inserted with ``ON CONFLICT DO NOTHING`` (the unique index decides, in the
    database); only when a chunk had ids already stored are their digests read back and
    compared. Reading digests first for every chunk made PostgreSQL scan the growing table
    (its statistics still said "empty" inside the importing transaction).
    """
    inserted = duplicates = 0
    conflicts: list[str] = []
    for start in range(0, len(events), CHUNK):
        chunk = events[start:start + CHUNK]
        added = _bulk_insert(conn, org_id, chunk)
        inserted += added
        if added == len(chunk):
            continue
        known = dict(conn.execute(
            sa.select(usage_events.c.event_id, usage_events.c.payload_digest).where(
                usage_events.c.organization_id == org_id,
                usage_events.c.event_id.in_([e.event_id for e in chunk]))
        ).all())
        for event in chunk:
            if known.get(event.event_id) != event.payload_digest:
                conflicts.append(f"{event.where}: field 'event_id': {event.event_id!r} was "
                                 "already stored with a different payload")
        duplicates += len(chunk) - added
    if conflicts:
        raise ConflictingEvent(conflicts)
    return inserted, duplicates


_INSERT = (
    "INSERT INTO usage_events (organization_id, account_id, event_id, metric_code, "
    "occurred_at, value, properties, payload_digest) VALUES ({marks}) "
    "ON CONFLICT (organization_id, event_id) DO NOTHING"
)


def _bulk_insert(conn: Connection, org_id: int, events: Sequence[StoredEvent]) -> int:
    """executemany on the driver: the column types' conversions done once here, by hand.

    This is the hot path of metering (millions of rows); SQLAlchemy's per-value type
    processing cost more than the database itself. The values written are exactly what
    ``UtcDateTime``, ``DecimalText`` and ``JSON`` would write, which the round-trip tests
    of tests/integration/billing/test_usage_import.py check on both databases.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name == "sqlite":
        sql = _INSERT.format(marks=", ".join("?" * 8))
        rows: list[tuple[Any, ...]] = [
            (org_id, e.account_id, e.event_id, e.metric_code,
             e.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
             None if e.value is None else str(e.value),
             canonical_properties(e.properties) if e.properties else None, e.payload_digest)
            for e in events
        ]
    else:
        from psycopg.types.json import Json

        sql = _INSERT.format(marks=", ".join(["%s"] * 8))
        rows = [
            (org_id, e.account_id, e.event_id, e.metric_code, e.occurred_at,
             None if e.value is None else str(e.value),
             Json(e.properties) if e.properties else None, e.payload_digest)
            for e in events
        ]
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # rows really inserted (conflicts count 0)
    finally:
        cursor.close()


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


def stream_period_raw(conn: Connection, org_id: int, start: datetime, end: datetime,
                      account_ids: Sequence[int]) -> Iterator[Any]:
    """:func:`stream_period` without the column types' conversions, for the rating hot path:
    ``occurred_at``, ``value`` and ``properties`` come as the driver gives them (text on
    SQLite) and :func:`event_fields` converts them — in a rating worker, not in the process
    that reads the database."""
    raw = sa.String()
    query = (
        sa.select(usage_events.c.account_id, usage_events.c.event_id,
                  usage_events.c.metric_code,
                  sa.type_coerce(usage_events.c.occurred_at, raw).label("occurred_at"),
                  sa.type_coerce(usage_events.c.value, raw).label("value"),
                  sa.type_coerce(usage_events.c.properties, raw).label("properties"))
        .where(usage_events.c.organization_id == org_id,
               usage_events.c.occurred_at >= start, usage_events.c.occurred_at < end,
               usage_events.c.account_id.in_(list(account_ids)))
        .order_by(usage_events.c.account_id, usage_events.c.metric_code,
                  usage_events.c.occurred_at, usage_events.c.id)
    )
    yield from conn.execute(query, execution_options={"yield_per": 5000})


def event_fields(occurred_at: Any, value: Any, properties: Any
                 ) -> tuple[datetime, Decimal | None, dict[str, str]]:
    """What ``UtcDateTime``, ``DecimalText`` and ``JSON`` would have returned."""
    if isinstance(occurred_at, str):  # SQLite: naive UTC text
        moment = datetime.fromisoformat(occurred_at).replace(tzinfo=UTC)
    else:
        moment = occurred_at.astimezone(UTC)
    props = json.loads(properties) if isinstance(properties, str) else properties
    return moment, None if value is None else Decimal(value), props or {}


def canonical_properties(properties: dict[str, str]) -> str:
    return json.dumps(properties, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
