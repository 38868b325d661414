"""One ``sealbill run send`` per run at a time, whatever path reaches the database.

The lock lives in the database itself, never beside a file path (two paths to one SQLite file —
a symbolic link, a hard link, a bind mount — once gave two senders two different lock files):
- PostgreSQL: a session advisory lock, released by the server when the session ends;
- SQLite: a row of ``send_locks`` inserted under SQLite's own write lock (``BEGIN
  IMMEDIATE``), naming its holder (host, pid and the process's start time). A row whose holder
  is dead — a sender killed by SIGKILL never deletes it — is taken over by the next sender, so
  a restarted sender takes over at once; a live holder makes the next one :class:`RunBusy`.
The sender processes a send forks work under their parent's lock, each on its own rows.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.schema import send_locks


class RunBusy(RuntimeError):
    """Another sender is working on this run."""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def holder_id(pid: int | None = None) -> str:
    """``host:pid:start-time:token``; the token makes each acquisition its own holder."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}:{secrets.token_hex(4)}"


def holder_alive(holder: str) -> bool:
    """Whether the process named by ``holder`` still runs (a holder on another host is
    assumed alive: it cannot be checked from here)."""
    host, _, rest = holder.partition(":")
    pid_text, _, rest = rest.partition(":")
    started = rest.partition(":")[0]
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return _start_time(pid) == started


def _busy(run_id: int, holder: str) -> RunBusy:
    return RunBusy(f"run {run_id} is being sent by another process ({holder})")


@contextmanager
def _advisory_lock(engine: Engine, run_id: int) -> Iterator[None]:
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


def acquire_row(engine: Engine, org_id: int, run_id: int) -> str:
    """Take the run's lock row (or a dead holder's); returns the holder id."""
    me = holder_id()
    where = sa.and_(send_locks.c.organization_id == org_id, send_locks.c.run_id == run_id)
    with engine.begin() as conn:  # BEGIN IMMEDIATE: one writer decides at a time
        current = conn.execute(sa.select(send_locks.c.holder).where(where)).scalar()
        if current is not None and holder_alive(current):
            raise _busy(run_id, current)
        conn.execute(sa.delete(send_locks).where(where))
        conn.execute(sa.insert(send_locks).values(organization_id=org_id, run_id=run_id,
                                                  holder=me, acquired_at=datetime.now(UTC)))
    return me


def release_row(engine: Engine, org_id: int, run_id: int, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(send_locks).where(
            send_locks.c.organization_id == org_id, send_locks.c.run_id == run_id,
            send_locks.c.holder == holder))


@contextmanager
def run_lock(engine: Engine, org_id: int, run_id: int) -> Iterator[None]:
    """Hold the run's sender lock for the duration of the block, or raise :class:`RunBusy`."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, run_id):
            yield
        return
    holder = acquire_row(engine, org_id, run_id)
    try:
        yield
    finally:
        release_row(engine, org_id, run_id, holder)
