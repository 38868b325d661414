"""Usage events: idempotent bulk ingestion (the reads are in ``store/billing/usage.py``).

Invariants:
- an event id is stored once per organization (unique constraint); the same id with the
  same payload (account, metric, instant, value, properties) is a no-op, with another payload
  a conflict — found by comparing the stored columns, only for the ids already present;
- ingestion runs in the caller's transaction, so a file is applied whole or not at all.

Ingestion hands the database many rows per statement and runs in the caller's thread — the
import runs it in a helper thread, so the database works while the next chunk is parsed: on
SQLite, multi-row ``INSERT … VALUES`` statements of thousands of rows (the driver releases the
GIL while SQLite executes one). On PostgreSQL a chunk of ``COPY_FROM_ROWS`` rows or more is
copied (``COPY … FROM STDIN``, text format) into a temporary table, dropped at commit, and moved
into ``usage_events`` by one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` in the rows' order —
the same statement, so the same duplicate and conflict rules, as a smaller chunk's (an API
batch), which unpacks its rows from one JSON parameter (``json_array_elements``): reading each
field of a ``json`` value reparses it (~2 µs of server CPU an event more than the COPY, measured
at 255,000 events), and a temporary table for each API request would churn the catalog.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

from sealbill.domain.usage import UsageEvent
from sealbill.store.billing.usage import event_fields

# (account_id, event_id, metric_code, occurred_at as UTC text, value text, properties JSON):
# exactly the column values stored on SQLite (see :func:`utc_text`, :func:`canonical_properties`).
Row = tuple[int, str, str, str, str | None, str | None]


def utc_text(moment: datetime) -> str:
    """The UTC text ``UtcDateTime`` writes on SQLite: ``2026-10-01 08:00:00.000000``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def canonical_properties(properties: dict[str, str]) -> str:
    return json.dumps(properties, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Row ``index`` of a chunk has the id of a stored event with another payload; ``earlier``:
    that event was stored by this same import (earlier in the file), not before it."""

    index: int
    event_id: str
    earlier: bool


class Ingester:
    """Inserts chunks of :data:`Row` into the caller's transaction (one import).

    Rows go in with ``ON CONFLICT DO NOTHING`` (the unique index decides, in the database);
    only when a chunk had ids already stored are those rows read back and compared.
    """

    def __init__(self, conn: Connection, org_id: int) -> None:
        self.org_id = int(org_id)
        self.sqlite = conn.dialect.name == "sqlite"
        driver = conn.connection.driver_connection
        assert driver is not None
        self._driver: Any = driver
        # What tells this import's own rows from those stored before it: on SQLite the
        # highest id now (BEGIN IMMEDIATE holds the only write lock, so every row this
        # import adds has a greater id); on PostgreSQL this transaction's id (xmin).
        query = ("SELECT coalesce(max(id), 0) FROM usage_events" if self.sqlite
                 else "SELECT mod(txid_current(), 4294967296)::text")
        self._mark = self._fetch(query, None)[0][0]
        if self.sqlite:  # as many rows per statement as the bound-parameter limit allows
            limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, limit // 6))
            row = f"({self.org_id},?,?,?,?,?,?)"  # the organization id inline: an int
            self._values = _VALUES.format(rows=",".join([row] * self._per_statement))
            self._one = _VALUES.format(rows=row)
            self._by_size: dict[int, str] = {}

    def insert(self, rows: Sequence[Row]) -> tuple[int, int, list[Conflict]]:
        """(inserted, duplicates, conflicts): a duplicate is a row whose id is stored with the
        same payload — before this import or earlier in it."""
        if not rows:
            return 0, 0, []
        cursor = self._driver.cursor()
        try:
            if self.sqlite:
                inserted, per = 0, self._per_statement
                full = len(rows) - len(rows) % per
                for start in range(0, full, per):
                    cursor.execute(self._values, list(chain.from_iterable(
                        rows[start:start + per])))
                    inserted += cursor.rowcount
                rest = rows[full:]
                if len(rest) > 1:  # one statement sized to the rest (an API batch, a tail)
                    cursor.execute(self._sized(len(rest)), list(chain.from_iterable(rest)))
                    inserted += cursor.rowcount
                elif rest:
                    cursor.executemany(self._one, rest)
                    inserted += cursor.rowcount
            elif len(rows) >= COPY_FROM_ROWS:
                inserted = _copy_pg(cursor, self.org_id, rows)
            else:
                cursor.execute(_INSERT_PG, (self.org_id, msgspec.json.encode(rows).decode()))
                inserted = cursor.rowcount
        finally:
            cursor.close()
        if inserted == len(rows):
            return inserted, 0, []
        conflicts = self._conflicts(rows)
        return inserted, len(rows) - inserted - len(conflicts), conflicts

    def _sized(self, count: int) -> str:
        """The multi-row INSERT for ``count`` rows (SQLite), built once per size."""
        statement = self._by_size.get(count)
        if statement is None:
            row = f"({self.org_id},?,?,?,?,?,?)"
            statement = self._by_size[count] = _VALUES.format(rows=",".join([row] * count))
        return statement

    def _conflicts(self, rows: Sequence[Row]) -> list[Conflict]:
        ids = [row[1] for row in rows]
        if self.sqlite:
            found = self._fetch(_STORED_SQLITE, (self._mark, self.org_id,
                                                json.dumps(ids, ensure_ascii=False)))
        else:
            found = self._fetch(_STORED_PG, (self._mark, self.org_id, ids))
        stored = {r[0]: (r[1], tuple(r[2:])) for r in found}
        conflicts = []
        for index, row in enumerate(rows):
            mine, columns = stored[row[1]]
            if columns != (row[0], *row[2:]) and not _same_payload(columns, row):
                conflicts.append(Conflict(index, row[1], bool(mine)))
        return conflicts

    def _fetch(self, sql: str, params: Sequence[Any] | None) -> list[Any]:
        cursor = self._driver.cursor()
        try:
            cursor.execute(sql, *([] if params is None else [params]))
            return list(cursor.fetchall())
        finally:
            cursor.close()


def _same_payload(columns: tuple[Any, ...], row: Row) -> bool:
    """The stored columns and the row mean the same event, written differently (``1.50`` and
    ``1.5``, properties in another order, as older imports wrote them)."""
    account_id, metric, at, value, props = columns
    return (account_id, metric) == (row[0], row[2]) and (
        event_fields(at, value, props) == event_fields(*row[3:]))


def _copy_pg(cursor: Any, org_id: int, rows: Sequence[Row]) -> int:
    """Insert ``rows`` through the temporary table (PostgreSQL); how many were new. The table
    is created if this transaction has not got it (a savepoint rolled back drops it too) and
    emptied first; the rows keep their order (``line``), so their ids follow it as in the
    JSON statement."""
    cursor.execute(_STAGE_PG)
    cursor.execute("TRUNCATE pg_temp.usage_events_in")
    with cursor.copy(_COPY_PG) as copy:
        for line, row in enumerate(rows):
            copy.write_row((line, *row))
    cursor.execute(_FROM_STAGE_PG, (org_id,))
    return int(cursor.rowcount)


SQLITE_ROWS_PER_STATEMENT = 4000
COPY_FROM_ROWS = 1000
_COLUMNS = "organization_id, account_id, event_id, metric_code, occurred_at, value, properties"
_VALUES = (f"INSERT INTO usage_events ({_COLUMNS}) VALUES {{rows}} "
           "ON CONFLICT (organization_id, event_id) DO NOTHING")
_INSERT_PG = (
    f"INSERT INTO usage_events ({_COLUMNS}) SELECT %s, (r->>0)::bigint, r->>1, r->>2, "
    "((r->>3) || '+00')::timestamptz, r->>4, (r->>5)::json FROM json_array_elements(%s::json) r "
    "ON CONFLICT (organization_id, event_id) DO NOTHING"
)
# The rows' own columns (``occurred_at`` is UTC text without offset: read as a timestamp, then
# placed in UTC); the same types as the stored columns, so a value is checked as when inserted.
_STAGE_PG = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_events_in (line integer, account_id bigint, "
    "event_id varchar(128), metric_code varchar(64), occurred_at timestamp, value varchar(64), "
    "properties json) ON COMMIT DROP")
_COPY_PG = ("COPY pg_temp.usage_events_in (line, account_id, event_id, metric_code, "
            "occurred_at, value, properties) FROM STDIN")
_FROM_STAGE_PG = (
    f"INSERT INTO usage_events ({_COLUMNS}) SELECT %s, account_id, event_id, metric_code, "
    "occurred_at AT TIME ZONE 'UTC', value, properties FROM pg_temp.usage_events_in ORDER BY line "
    "ON CONFLICT (organization_id, event_id) DO NOTHING")
# The stored columns as the rows carry them (UTC text, canonical JSON text), to compare.
_STORED = ("SELECT event_id, {mine}, account_id, metric_code, {at}, value, {props} "
           "FROM usage_events WHERE organization_id = {org} AND event_id {ids}")
_STORED_SQLITE = _STORED.format(mine="id > ?", at="occurred_at", props="properties", org="?",
                                ids="IN (SELECT value FROM json_each(?))")
_STORED_PG = _STORED.format(
    mine="xmin::text = %s", org="%s", ids="= ANY(%s)", props="properties::text",
    at="to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")


def stored_row(account_id: int, event: UsageEvent) -> Row:
    """The :data:`Row` of a domain ``UsageEvent`` (parsed and checked already)."""
    return (account_id, event.event_id, event.metric_code, utc_text(event.timestamp),
            None if event.value is None else str(event.value),
            canonical_properties(event.properties) if event.properties else None)
