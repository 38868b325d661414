"""Engine behaviour the pipeline relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.db import (
    create_engine,
    ids_condition,
    ids_value,
    read_transaction,
    read_transaction_on,
)


def _two_engines(path: Path) -> tuple[Engine, Engine]:
    """Two engines on one SQLite file holding a table ``t`` with one committed row."""
    writer, other = create_engine(f"sqlite:///{path}"), create_engine(f"sqlite:///{path}")
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    return writer, other


def test_a_read_transaction_does_not_wait_for_the_sqlite_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock.sqlite"
    writer, reader = _two_engines(path)
    with writer.begin() as holding:  # BEGIN IMMEDIATE: the write lock is taken and held
        holding.exec_driver_sql("INSERT INTO t VALUES (2)")
        with read_transaction(reader) as conn:  # a snapshot of what is committed
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        # the control: a writer would have to wait for the lock
        timid = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            timid.execute("BEGIN IMMEDIATE")
        timid.close()
    writer.dispose()
    reader.dispose()


def test_a_held_connection_reads_without_the_lock_then_writes_with_it(tmp_path: Path) -> None:
    path = tmp_path / "held.sqlite"
    writer, sender = _two_engines(path)
    with sender.connect() as held:
        with writer.begin() as holding:  # another process holds the write lock
            holding.exec_driver_sql("INSERT INTO t VALUES (2)")
            with read_transaction_on(held):  # does not wait for it
                assert held.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        # the next transaction on the same connection takes the write lock up front again
        with held.begin():
            timid = sqlite3.connect(path, timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                timid.execute("BEGIN IMMEDIATE")
            timid.close()
        with writer.begin() as holding, read_transaction_on(held):  # a snapshot again
            holding.exec_driver_sql("INSERT INTO t VALUES (3)")
            assert held.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    writer.dispose()
    sender.dispose()


def _ids_condition_reads(engine: Engine) -> None:
    """Bound now or named for later, ``ids_condition`` selects the same rows: those listed."""
    table = sa.table("t_ids", sa.column("id", sa.BigInteger))
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_ids (id BIGINT PRIMARY KEY)")
        conn.execute(sa.insert(table), [{"id": i} for i in range(1, 8)])
        bound = sa.select(table.c.id).where(ids_condition(dialect, table.c.id, ids=[2, 5, 9]))
        named = sa.select(table.c.id).where(ids_condition(dialect, table.c.id, name="wanted"))
        assert sorted(conn.execute(bound).scalars()) == [2, 5]
        given = {"wanted": ids_value(dialect, [7, 1])}
        assert sorted(conn.execute(named, given).scalars()) == [1, 7]
        empty = {"wanted": ids_value(dialect, [])}
        assert list(conn.execute(named, empty).scalars()) == []
        conn.exec_driver_sql("DROP TABLE t_ids")


def test_the_one_parameter_id_list_selects_the_listed_rows_sqlite(sqlite_engine: Engine) -> None:
    _ids_condition_reads(sqlite_engine)


def test_the_one_parameter_id_list_selects_the_listed_rows_postgres(pg_engine: Engine) -> None:
    _ids_condition_reads(pg_engine)


def test_the_one_parameter_id_list_wants_the_ids_or_a_name() -> None:
    column = sa.column("id", sa.BigInteger)
    with pytest.raises(ValueError, match="either"):
        ids_condition("sqlite", column)
    with pytest.raises(ValueError, match="either"):
        ids_condition("postgresql", column, ids=[1], name="wanted")
