"""The plan stage's bulk writes — a chunk's envelopes and outbox rows — at the driver level on
SQLite (the pattern of ``store/billing/bulk.py``).

Profiled at 10,000 accounts, writing the plan's rows through SQLAlchemy cost more CPU than
SQLite spent storing them: each row's parameters went through the ``JSON`` and
``UtcDateTime`` processors one by one. Here, on SQLite, a chunk goes to the driver's
``executemany`` with the values already written as the column types write them: ``JSON`` as
``json.dumps``, ``UtcDateTime`` as naive UTC text in SQLAlchemy's format, booleans as 0/1.
On PostgreSQL a chunk is one ``COPY`` (``store/bulk_insert.py``: SQLAlchemy's executemany was
one ``INSERT`` a row on the server).

Invariants: the rows stored are those SQLAlchemy's ``insert`` would store
(``tests/integration/delivery/test_plan_writes.py``: SQLAlchemy's text for the times on
SQLite, every value read back through the column types on both databases);
:func:`insert_envelopes` gives the ids in the order of the rows given, read back by the plan's
unique (plan, invoice) key; every read filters on ``organization_id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.bulk_insert import insert_rows
from sealbill.store.db import ids_as_one, is_postgres, not_indexed
from sealbill.store.schema import delivery_envelopes, outbox

_ENVELOPE_COLUMNS = ("organization_id", "plan_id", "run_id", "invoice_id", "account_id",
                     "recipients", "attachment_sha256", "body_sha256", "amount_minor",
                     "currency", "is_canary", "created_at")
_OUTBOX_COLUMNS = ("organization_id", "run_id", "envelope_id", "message_id", "status",
                   "last_error", "attempts", "updated_at")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})")


_ENVELOPES_SQLITE = _insert_sql("delivery_envelopes", _ENVELOPE_COLUMNS)
_OUTBOX_SQLITE = _insert_sql("outbox", _OUTBOX_COLUMNS)


def _moment(value: datetime) -> str:
    """``UtcDateTime`` on SQLite: naive UTC text, as SQLAlchemy's ``DateTime`` writes it."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime refused: {value!r}")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _moments() -> Callable[[datetime], str]:
    """:func:`_moment`, remembering the last value (a chunk's rows share their time)."""
    last: list[tuple[datetime, str]] = []

    def moment(value: datetime) -> str:
        if not last or last[0][0] is not value:
            last[:] = [(value, _moment(value))]
        return last[0][1]
    return moment


def driver_executemany(conn: Connection, sql: str, rows: Any) -> None:
    """``sql`` run for each of ``rows`` by the driver itself (SQLite's ``executemany``: no
    per-row parameter processing; the values must be what the columns store)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def insert_envelopes(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert envelopes of one plan, returning their ids in the order given.

    No ``RETURNING``: SQLite cannot order a multi-row ``RETURNING``, and SQLAlchemy then sends
    one statement a row; the ids are read back by the plan's unique (plan, invoice) key."""
    if not rows:
        return []
    plan_ids = {int(row["plan_id"]) for row in rows}
    if len(plan_ids) != 1:
        raise ValueError(f"insert_envelopes: one plan at a time, got plans {sorted(plan_ids)}")
    [plan_id] = plan_ids
    org_id = int(rows[0]["organization_id"])
    if is_postgres(conn):
        insert_rows(conn, delivery_envelopes, rows)
    else:
        moment = _moments()
        driver_executemany(conn, _ENVELOPES_SQLITE, (
            (row["organization_id"], row["plan_id"], row["run_id"], row["invoice_id"],
             row["account_id"], json.dumps(row["recipients"]), row["attachment_sha256"],
             row["body_sha256"], row["amount_minor"], row["currency"],
             1 if row["is_canary"] else 0, moment(row["created_at"])) for row in rows))
    invoice_ids = [int(row["invoice_id"]) for row in rows]
    found = {invoice_id: envelope_id for invoice_id, envelope_id in conn.execute(
        sa.select(delivery_envelopes.c.invoice_id, delivery_envelopes.c.id).where(
            not_indexed(delivery_envelopes.c.organization_id) == org_id,
            delivery_envelopes.c.plan_id == plan_id,
            ids_as_one(conn, delivery_envelopes.c.invoice_id, invoice_ids)))}
    return [found[i] for i in invoice_ids]


def insert_outbox(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows (the columns of :data:`_OUTBOX_COLUMNS`)."""
    if not rows:
        return
    if is_postgres(conn):
        insert_rows(conn, outbox, rows)
        return
    moment = _moments()
    driver_executemany(conn, _OUTBOX_SQLITE, (
        (row["organization_id"], row["run_id"], row["envelope_id"], row["message_id"],
         row["status"], row["last_error"], row["attempts"], moment(row["updated_at"]))
        for row in rows))
