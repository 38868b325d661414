"""Group commit of usage batches on SQLite (``POST /v1/usage/batch``, see ``app/ingest.py``).

Invariants: each request is answered only after the commit that holds its batch; a batch is
applied whole or not at all (a refused one is rolled back alone, in its own savepoint, and
answered its own error); one audit entry per stored batch.

Why it is shaped so (bench/RESULTS.md, "Usage ingestion over HTTP"): a commit writes every
page its transaction dirtied to the WAL, and a batch of 1,000 events over 1,000 accounts
dirties about one leaf of the ``(account, metric, time)`` index per event — so the cost of an
event falls with the number of events per commit (28 µs of writer CPU alone, 13 µs four
batches together, on a table of 300,000 events). Hence:

- **Group commit**: a batch parsed while another is writing joins a queue; whoever takes the
  writer's turn next writes every queued batch in one transaction. It first waits, at most
  :data:`GATHER_SECONDS`, for the batches being parsed and — when fewer are queued than there
  were requests at once during the last group — for the requests that group's answers let
  in: with 4 clients, groups of 1-3 batches became mostly 3-4 (a lone client never waits).
- **One statement per group**: the group's rows go in one ``INSERT``, sorted by the index key
  (each leaf is visited once, in order); only when that statement meets a stored id (a
  duplicate or a conflict) is it undone and each batch written in a savepoint of its own.
- **One writer connection** per engine, kept across groups: its page cache (64 MiB) stays
  valid from one group to the next (SQLite keeps a connection's cache when it made the last
  change), instead of being read again from the WAL by whichever pooled connection comes.
- **Checkpoints off the commit**: the writer connection commits with ``wal_autocheckpoint=0``
  (the automatic checkpoint ran inside the commit that crossed 1,000 WAL pages, 20-200 ms of
  nearly every commit); the request that led a group checkpoints once every
  :data:`CHECKPOINT_EVENTS` events, before giving the turn to the next group (a page dirtied
  by several groups is copied once per checkpoint: 50,000 rather than 20,000 events between
  two saved about 1.5 µs of CPU per event; the WAL grows to some 150 MB between them, then
  starts again from its beginning).
- **Answers at once**: the requests of a group wait on a condition, not on the writer's turn,
  so they are answered as soon as their group is committed, not after the next group (which
  may have taken the turn first) and not after a checkpoint.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app.context import Actor
from sealbill.store.billing.usage_ingest import Conflict, Ingester, Row

CHECKPOINT_EVENTS = 50_000
GATHER_SECONDS = 0.008
_WRITER_CACHE_KIB = -65536  # negative: KiB, not pages
_index_key = itemgetter(0, 2, 3)  # (account_id, metric_code, occurred_at): the index's order
_lock = threading.Lock()
_writers: dict[Engine, Writer] = {}


@dataclass(slots=True)
class Job:
    """One request's batch waiting for its write: ``outcome`` is set once its group is
    committed (the counts) or refused (the batch's error)."""

    actor: Actor
    org_id: int
    received: int
    rows: list[Row]
    outcome: dict[str, Any] | BaseException | None = None


# Inserts rows: (inserted, duplicates, conflicts), as ``Ingester.insert``.
Insert = Callable[[list[Row]], tuple[int, int, list[Conflict]]]
# Stores one batch in the connection's transaction (its rows by ``Insert``), or raises the
# error that refuses it.
WriteOne = Callable[[Connection, Job, Insert], dict[str, Any]]


@dataclass(slots=True)
class Writer:
    """The writer's turn (``busy``), the batches waiting for it and its kept connection; every
    field is read and changed with ``_lock`` held, except ``conn`` and ``uncheckpointed``,
    which only the request holding the turn uses."""

    engine: Engine
    busy: bool = False  # a request holds the writer's turn
    queue: list[Job] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=lambda: threading.Condition(_lock))
    parsing: int = 0  # requests received, not yet queued
    active: int = 0  # requests received, not yet answered
    peak: int = 1  # the most requests active at once since the last group was formed
    uncheckpointed: int = 0  # events committed since the last checkpoint
    conn: Connection | None = None

    def connection(self) -> Connection:
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            conn = self.engine.connect()
            driver: Any = conn.connection.driver_connection
            driver.execute("PRAGMA wal_autocheckpoint=0")
            driver.execute(f"PRAGMA cache_size={_WRITER_CACHE_KIB}")
            self.conn = conn
        return self.conn

    def close(self) -> None:
        with _lock:
            while self.busy:
                self.arrived.wait()
            self.busy = True
        try:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        finally:
            with _lock:
                self.busy = False
                self.arrived.notify_all()


def writer(engine: Engine) -> Writer:
    with _lock:
        found = _writers.get(engine)
        if found is None:
            found = _writers[engine] = Writer(engine)
            if not sa.event.contains(engine, "engine_disposed", _forget):
                sa.event.listen(engine, "engine_disposed", _forget)
        return found


def _forget(engine: Engine) -> None:
    with _lock:
        found = _writers.pop(engine, None)
    if found is not None:
        found.close()


def parsing(engine: Engine, delta: int) -> None:
    """Counts a request in (``+1``, before parsing) or out (``-1``, refused by the parser)."""
    found = writer(engine)
    with _lock:
        found.parsing += delta
        found.active += delta
        found.peak = max(found.peak, found.active)
        found.arrived.notify_all()


def write(engine: Engine, job: Job, write_one: WriteOne) -> None:
    """Queues ``job`` (counted in by :func:`parsing`) and returns once its group is committed
    (or refused): the outcome is set only then, and a request whose batch was written by
    another's group is woken at once, without waiting for the writer's turn."""
    found = writer(engine)
    with _lock:
        found.queue.append(job)
        found.parsing -= 1
        found.arrived.notify_all()
        while job.outcome is None and found.busy:
            found.arrived.wait()
        if job.outcome is not None:  # written by the group before
            found.active -= 1
            return
        found.busy = True  # the writer's turn: lead a group
        try:
            _gather(found)
            group, found.queue[:] = list(found.queue), []
            found.peak = found.active
        except BaseException:
            found.busy = False
            found.arrived.notify_all()
            raise
    try:
        outcomes = _write_group(found, group, write_one)
        with _lock:  # answered: the batches are committed (or refused)
            for member, outcome in zip(group, outcomes, strict=True):
                member.outcome = outcome
            found.arrived.notify_all()
        _checkpoint_now_and_then(found, sum(len(j.rows) for j in group))
    finally:
        with _lock:
            found.busy = False
            found.active -= 1
            found.arrived.notify_all()


def _gather(found: Writer) -> None:
    """Waits (``_lock`` held, released while waiting) for the batches being parsed and for as
    many batches as there were requests at once since the last group was formed,
    :data:`GATHER_SECONDS` at most."""
    deadline = time.monotonic() + GATHER_SECONDS
    while found.parsing > 0 or len(found.queue) < found.peak:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        found.arrived.wait(left)


Outcome = dict[str, Any] | BaseException


def _write_group(found: Writer, group: list[Job], write_one: WriteOne) -> list[Outcome]:
    """One transaction for ``group``: each batch's outcome, once committed; a failure of the
    transaction itself is every batch's error."""
    try:
        conn = found.connection()
        with conn.begin():
            ingesters: dict[int, Ingester] = {}
            for job in group:
                if job.org_id not in ingesters:
                    ingesters[job.org_id] = Ingester(conn, job.org_id)
            outcomes = _all_at_once(conn, group, ingesters, write_one)
            if outcomes is None:
                outcomes = _one_by_one(conn, group, ingesters, write_one)
    except BaseException as exc:  # handed to each waiting request
        return [exc] * len(group)
    return outcomes


def _all_at_once(conn: Connection, group: list[Job], ingesters: dict[int, Ingester],
                 write_one: WriteOne) -> list[Outcome] | None:
    """Writes the group's rows in one sorted statement when every batch is of one
    organization, new ids only and accepted; ``None`` (nothing written) otherwise."""
    if len(ingesters) > 1:
        return None
    savepoint = conn.begin_nested()
    rows = sorted((row for job in group for row in job.rows), key=_index_key)
    ingester = ingesters[group[0].org_id]
    inserted, _, _ = ingester.insert(rows)
    if inserted != len(rows):  # a stored id: each batch counts its own, in a savepoint
        savepoint.rollback()
        return None
    try:
        outcomes: list[Outcome] = [write_one(conn, job, _inserted) for job in group]
    except Exception:  # e.g. an archived account: the group's batches one by one
        savepoint.rollback()
        return None
    savepoint.commit()
    return outcomes


def _inserted(rows: list[Row]) -> tuple[int, int, list[Conflict]]:
    """The rows of a batch of a group written at once: all new."""
    return len(rows), 0, []


def _one_by_one(conn: Connection, group: list[Job], ingesters: dict[int, Ingester],
                write_one: WriteOne) -> list[Outcome]:
    """Each batch in a savepoint of its own (a lone batch in the transaction itself)."""
    outcomes: list[Outcome] = []
    for job in group:
        savepoint = conn.begin_nested() if len(group) > 1 else None
        try:
            outcomes.append(write_one(conn, job, ingesters[job.org_id].insert))
        except Exception as exc:  # this batch's own refusal (or a database error)
            if savepoint is None:
                raise
            savepoint.rollback()
            outcomes.append(exc)
        else:
            if savepoint is not None:
                savepoint.commit()
    return outcomes


def _checkpoint_now_and_then(found: Writer, events: int) -> None:
    """Once every :data:`CHECKPOINT_EVENTS` events, a checkpoint on the writer's connection,
    after the group is answered but with the turn still held: no group writes meanwhile, so
    it copies every frame and the next group starts the WAL again from its beginning (over
    blocks already written). Run by another connection while the groups went on, it never
    caught up: the WAL only grew (567 MB after 200,000 events), every frame in a new block."""
    found.uncheckpointed += events
    if found.uncheckpointed < CHECKPOINT_EVENTS or found.conn is None:
        return
    found.uncheckpointed = 0
    driver: Any = found.conn.connection.driver_connection
    # A failure leaves the batches committed; the next checkpoint (or SQLite's own) catches up.
    with contextlib.suppress(sqlite3.OperationalError):
        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
