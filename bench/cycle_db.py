"""The cycle bench's database: an SQLite file in the work folder, or a throwaway PostgreSQL.

PostgreSQL is a new cluster started the way the tests start theirs
(``tests/support/pgcluster.py``: ``initdb`` + ``pg_ctl`` on 127.0.0.1 on a free port, as the
``postgres`` user when run as root, since PostgreSQL refuses to run as root), but with
PostgreSQL's default durability (fsync, synchronous commit and full-page writes on — the tests
turn them off). The cluster is stopped and its folder removed when the bench ends, error or
SIGTERM included.

The server's CPU: :class:`ServerCpu` sums ``utime + stime`` of the cluster's processes from
``/proc`` — the postmaster, every live child (backends, checkpointer, WAL writer, autovacuum)
and, through the postmaster's ``cutime + cstime``, the children it has already reaped (a
backend whose connection closed during a stage, such as a forked sender's).

After the seed, :func:`analyze_all` (in the seed's row, not the cycle's): an operator's
accounts exist, and have been analyzed by autovacuum, long before a billing cycle.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from tests.support.pgcluster import Cluster, start_cluster

from sealbill.store.db import create_engine

# What decides the server's speed and durability, printed in the bench's header.
SETTINGS: Final = ("fsync", "synchronous_commit", "full_page_writes", "wal_level",
                   "shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size",
                   "checkpoint_timeout", "effective_cache_size", "jit", "max_connections")
_CLK_TCK: Final = 100  # os.sysconf("SC_CLK_TCK") on Linux


def _stat_ticks(pid: int) -> tuple[int, int]:
    """(own utime + stime, reaped children's cutime + cstime) of a process, in clock ticks;
    (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # fields after "(comm)": state is field 3, utime 14 ... cstime 17
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as found:
            return [int(c) for c in found.read().split()]
    except OSError:
        return []


@dataclass(frozen=True)
class ServerCpu:
    """CPU seconds the cluster has spent since it started (see the module's docstring)."""

    postmaster: int

    def seconds(self) -> float:
        own, reaped = _stat_ticks(self.postmaster)
        ticks = own + reaped
        for child in _children(self.postmaster):
            child_own, child_reaped = _stat_ticks(child)
            ticks += child_own + child_reaped
        return ticks / _CLK_TCK


@dataclass
class Database:
    kind: str  # "sqlite" | "postgresql"
    url: str
    server: ServerCpu | None = None  # None: in-process (SQLite), counted as the bench's CPU
    facts: dict[str, Any] = field(default_factory=dict)


def server_facts(url: str) -> dict[str, Any]:
    """The server's version and the settings that matter (see ``SETTINGS``)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            facts: dict[str, Any] = {"server": conn.exec_driver_sql(
                "SHOW server_version").scalar_one()}
            for name in (*SETTINGS, "data_directory"):  # the folder: in --json only
                facts[name] = conn.exec_driver_sql(f"SHOW {name}").scalar_one()
    finally:
        engine.dispose()
    return facts


def analyze_all(url: str) -> None:
    """``ANALYZE`` every table: what autovacuum has done on an operator's database long before
    the cycle, since the accounts and subscriptions were created (the seed is not in the
    cycle's figures). Without it the cycle starts on the statistics of empty tables."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def _postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cluster's ``finally``


@contextmanager
def cycle_database(kind: str, workdir: Path) -> Iterator[Database]:
    """The database of one bench run (empty; the caller migrates it)."""
    if kind == "sqlite":
        yield Database(kind, f"sqlite:///{workdir / 'sealbill.sqlite'}")
        return
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    cluster = None
    try:
        cluster = start_cluster(durable=True)
        yield Database(kind, cluster.url, ServerCpu(_postmaster_pid(cluster)),
                       server_facts(cluster.url))
    finally:
        try:
            if cluster is not None:
                cluster.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
