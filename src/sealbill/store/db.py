"""Engines for the embedded SQLite default and for PostgreSQL (psycopg 3).

SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: the write lock is taken up front, so two processes that finalize at the
same time queue on ``busy_timeout`` instead of failing half-way with "database is locked".
The exception is :func:`read_transaction` (or :func:`read_transaction_on`, on a connection
the caller holds), for work that only reads: a deferred ``BEGIN``, a snapshot that neither
takes nor waits for the write lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, CursorResult, Engine

DEFAULT_DATABASE_URL = "sqlite:///sealbill.sqlite"
READ_ONLY = "sealbill_read_only"  # execution option: see read_transaction()


def database_url(explicit: str | None = None) -> str:
    """``--db`` wins, then ``SEALBILL_DATABASE_URL``, then ``sealbill.sqlite`` in the cwd."""
    url = explicit or os.environ.get("SEALBILL_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


# A database row as a mapping (SQLAlchemy's RowMapping keys are str or Column).
Row = Mapping[Any, Any]


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row a single INSERT created."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])


def ids_in(conn: Connection, column: sa.ColumnElement[Any], ids: Sequence[int]
           ) -> sa.ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY(...)``), so the
    statement stays short and the same for every chunk: with one parameter per id, a chunk
    of 1,000 ids made a statement too long for psycopg's cache, parsed again each time."""
    if conn.dialect.name == "postgresql":
        return ids_condition("postgresql", column, ids=ids)
    return column.in_(list(ids))


def ids_as_one(conn: Connection, column: sa.ColumnElement[Any], ids: Sequence[int]
               ) -> sa.ColumnElement[bool]:
    """``column IN ids`` with the ids as one parameter on both databases: PostgreSQL as
    :func:`ids_in`, SQLite a JSON array read by ``json_each`` (SQLite looks each value up in
    ``column``'s index). The statement is compiled once for every chunk, where an ``IN`` list
    of 500 ids cost SQLAlchemy about as much to render as the rows it read."""
    return ids_condition(conn.dialect.name, column, ids=ids)


def ids_value(dialect: str, ids: Sequence[int]) -> Any:
    """The ids as the value of :func:`ids_condition`'s one parameter: a list of ints for
    PostgreSQL's array, a JSON array (text) for SQLite's ``json_each``."""
    as_ints = [int(i) for i in ids]
    return as_ints if dialect == "postgresql" else json.dumps(as_ints)


def ids_condition(dialect: str, column: Any, *, ids: Sequence[int] | None = None,
                  name: str | None = None) -> sa.ColumnElement[bool]:
    """``column IN ids`` with the ids as one parameter: ``= ANY(CAST(:p AS BIGINT[]))`` on
    PostgreSQL, ``IN (SELECT value FROM json_each(:p))`` elsewhere — the one place these
    shapes are written. Either the ids are bound now (``ids``), or the parameter is ``name``,
    required, for a statement compiled once and given :func:`ids_value` at each run."""
    if (ids is None) == (name is None):
        raise ValueError("give either the ids or the parameter's name")
    value: Any = None if ids is None else ids_value(dialect, ids)
    if dialect == "postgresql":
        array = postgresql.ARRAY(sa.BigInteger)
        param = sa.bindparam(name, value, type_=array, required=ids is None)
        condition: sa.ColumnElement[bool] = column == sa.any_(sa.cast(param, array))
        return condition
    param = sa.bindparam(name, value, type_=sa.String(), required=ids is None)  # type: ignore[arg-type]
    values = sa.func.json_each(param).table_valued("value")
    in_values: sa.ColumnElement[bool] = column.in_(sa.select(values.c.value))
    return in_values


def not_indexed(column: Any) -> Any:
    """``column + 0``: the same value, but no index on ``column`` can serve the condition.

    Without statistics (nothing runs ANALYZE) SQLite takes an equality on the leading column
    of an index over a range or an ``IN`` list on another: for ``organization_id = ? AND
    account_id IN (...)`` it walked every row of the organization, for every chunk of a
    billing run. Taking the organization out of the choice leaves the per-account index;
    PostgreSQL then picks it too, with or without fresh statistics."""
    return column + 0


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


# Rows written at once from which a bulk writer refreshes the planner's statistics itself.
ANALYZE_FROM_ROWS = 1000


def refresh_statistics(conn: Connection, tables: Sequence[sa.Table], rows: int) -> bool:
    """On PostgreSQL, ``ANALYZE`` the tables a bulk write just filled (``rows`` written, at
    least ``ANALYZE_FROM_ROWS``), in the caller's transaction (ANALYZE counts the rows this
    transaction inserted); True when it did.

    Without it the planner keeps the statistics of the tables as they were — often empty —
    until autovacuum comes by (a minute or more later, and never within the writing
    transaction): estimating one row per organization, it walked every contact of the
    organization for each message sent, O(n^2) over a run (bench/RESULTS.md, 2026-12-07, the
    cycle on PostgreSQL). ANALYZE holds a SHARE UPDATE EXCLUSIVE lock until the commit: it
    blocks no read or write, only another ANALYZE or VACUUM of those tables. SQLite: nothing
    (no ANALYZE has ever run there, and its plans are steered by :func:`not_indexed`)."""
    if rows < ANALYZE_FROM_ROWS or not is_postgres(conn):
        return False
    conn.exec_driver_sql("ANALYZE " + ", ".join(table.name for table in tables))
    return True


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One atomic unit of work: committed whole on success, rolled back whole on error."""
    with engine.begin() as conn:
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads. On SQLite a deferred ``BEGIN``: a consistent snapshot
    that neither takes nor waits for the write lock, so parallel senders can read while one of
    them writes; elsewhere an ordinary transaction."""
    with engine.connect() as conn, read_transaction_on(conn):
        yield conn


@contextmanager
def read_transaction_on(conn: Connection) -> Iterator[Connection]:
    """:func:`read_transaction` on a connection the caller holds (a sender holds one for a
    whole phase). The read-only option is set only for this transaction's ``BEGIN`` (issued
    by ``conn.begin()`` itself): the connection's next ``begin()`` is a write transaction
    again, with the write lock up front."""
    conn.execution_options(**{READ_ONLY: True})
    try:
        transaction = conn.begin()
    finally:
        conn.execution_options(**{READ_ONLY: False})
    with transaction:
        yield conn
