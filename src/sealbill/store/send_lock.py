"""One ``sealbill run send`` per run at a time.

A PostgreSQL session advisory lock, or an ``flock`` next to the SQLite file: both are released
by the operating system when the process dies, so a restarted sender can take over at once.
The sender processes a send forks work under their parent's lock, each on its own rows.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine


class RunBusy(RuntimeError):
    """Another sender is working on this run."""


@contextmanager
def run_lock(engine: Engine, org_id: int, run_id: int) -> Iterator[None]:
    """Hold the run's sender lock for the duration of the block, or raise :class:`RunBusy`."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:a, :b)"),
                               {"a": 0x5E4D, "b": run_id}).scalar()
            conn.commit()
            if not got:
                raise RunBusy(f"run {run_id} is being sent by another process")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"),
                             {"a": 0x5E4D, "b": run_id})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = f"{database}.org{org_id}-run{run_id}.sendlock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunBusy(f"run {run_id} is being sent by another process") from exc
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
