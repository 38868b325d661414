"""Many rows of one table in one statement: ``COPY … FROM STDIN`` on PostgreSQL.

SQLAlchemy's ``conn.execute(insert(table), rows)`` runs, on psycopg, one ``INSERT`` a row
(pipelined: one round trip, but a parse-bind-execute and an executor start a row on the
server, and SQLAlchemy's parameter processing a row in the client). Profiled at 10,000
accounts (``pg_stat_statements``), the render stage ran 50,000 such statements for its
``documents`` rows and the plan 20,000 for its envelopes and outbox rows
(bench/RESULTS.md, pgcycle, 2026-12-07 21:00). :func:`insert_rows` copies them instead: one
statement, the rows written by psycopg's C code, the server's multi-row insert.

Invariants: the values stored are those the column types would store — ``JSON`` columns as
``json.dumps`` (SQLAlchemy's default serializer), ``UtcDateTime`` as an aware UTC timestamp
(a naive one refused), everything else as given, checked by the server's input functions; every
constraint and foreign key is checked as for an ``INSERT`` (row by row, at the statement's
end) and a violation is raised as SQLAlchemy's ``IntegrityError``, as from the ``INSERT``.
SQLite, and a single row, keep SQLAlchemy's ``insert``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.db import is_postgres
from sealbill.store.types import UtcDateTime


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, column names of ``table``) in the caller's
    transaction: all of them or, on an error, none (the statement fails as a whole)."""
    if not rows:
        return
    if len(rows) == 1 or not is_postgres(conn):
        conn.execute(sa.insert(table), list(rows))
        return
    import psycopg

    names = list(rows[0])
    writers = [_writer(table.c[name].type, conn.dialect) for name in names]
    driver = conn.connection.driver_connection
    assert driver is not None
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] if write is None else write(row[name])
                                for name, write in zip(names, writers, strict=True)])
    except psycopg.IntegrityError as exc:
        raise sa.exc.IntegrityError(statement, None, exc) from exc


def _writer(column_type: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """What the column's type does to a value before the driver sees it (None: nothing)."""
    if isinstance(column_type, sa.JSON):
        return json.dumps
    if isinstance(column_type, UtcDateTime):  # its own rule: aware, in UTC, naive refused
        return lambda value: column_type.process_bind_param(value, dialect)
    if isinstance(column_type, sa.types.TypeDecorator):
        # its own bind processing would be skipped by COPY: refuse rather than store a value
        # the type would have written otherwise
        raise TypeError(f"bulk insert: no COPY writer for {type(column_type).__name__}")
    return None
