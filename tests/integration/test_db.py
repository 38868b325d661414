"""Engine behaviour the pipeline relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sealbill.store.db import create_engine, read_transaction


def test_a_read_transaction_does_not_wait_for_the_sqlite_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock.sqlite"
    writer, reader = create_engine(f"sqlite:///{path}"), create_engine(f"sqlite:///{path}")
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
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
