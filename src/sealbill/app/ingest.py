"""Usage ingestion by batches (the HTTP ``POST /v1/usage/batch``): up to 10,000 events, each
idempotent by its ``event_id``, checked by the same parser as ``sealbill import usage``.

Invariants: a batch is applied whole or not at all (one transaction); an event already stored
with the same payload is a duplicate (counted, not stored again), with another payload a
conflict that refuses the batch, as does an event for an archived account; every problem is
reported with the event's index and field.
The organization's reference → account map and metric rules are cached in the process and
reloaded when a batch names an account or metric it does not know, so a new one is usable at
once (the per-metric rules are those of ``sealbill import usage``).

Speed (``bench/bench_ingest_api.py``): a batch is decoded in one msgspec call when every event
takes the fast path; on SQLite the write transactions of one process queue on a lock of
their own, so concurrent batches wait for each other's commit instead of polling SQLite's
busy handler (which sleeps up to 100 ms between tries and left the server idle).
Group commit (SQLite): a batch parsed while another is writing joins a queue; whoever takes
the lock next writes every queued batch in one transaction, each in a savepoint of its own (a
refused batch is rolled back alone, its error answered to its own request), and commits once.
Each request is answered only after the commit that holds its batch.
Checkpoints (SQLite): SQLite's automatic checkpoint runs inside the commit that crosses 1,000
WAL pages, and took 20-200 ms of every commit, the writer's turn held all along; the group's
connection commits without it, and the request that led a group runs a passive checkpoint
once every :data:`CHECKPOINT_EVENTS` events, after giving the turn to the next group.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit
from sealbill.app.context import USAGE_WRITE, Actor
from sealbill.app.errors import Conflict, Invalid, Problem, StateError
from sealbill.inputs.usage import MetricRule
from sealbill.pipeline.billing.usage_rows import Batch, RowParser
from sealbill.store.billing.catalog import load_metrics
from sealbill.store.billing.usage_ingest import Ingester, Row
from sealbill.store.db import ids_in
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts

MAX_EVENTS = 10_000
CHECKPOINT_EVENTS = 20_000
_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_parsers: dict[tuple[str, int], RowParser] = {}
_SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default, in pages
_SQLITE_CACHE_KIB = -2000  # SQLite's default page cache, in KiB (negative: KiB, not pages)
# A group touches a leaf of the (account, metric, time) index per account: some thousand
# pages, more than the default cache holds, which then spills them to the WAL mid-way.
_GROUP_CACHE_KIB = -65536
_lock = threading.Lock()
_writers: dict[str, _Writer] = {}


def _parser(engine: Engine, org_id: int, *, fresh: bool) -> RowParser:
    key = (engine.url.render_as_string(hide_password=False), org_id)
    with _lock:
        cached = _parsers.get(key)
    if cached is not None and not fresh:
        return cached
    with engine.begin() as conn:
        parser = RowParser(parties.account_ids_by_reference(conn, org_id),
                           {code: MetricRule.of(row)
                            for code, row in load_metrics(conn, org_id).items()})
    with _lock:
        _parsers[key] = parser
    return parser


def _parse(engine: Engine, org_id: int, items: list[str]) -> Batch:
    batch = _parser(engine, org_id, fresh=False).parse(0, items)
    if batch.bad:  # perhaps an account or metric created since the map was read
        batch = _parser(engine, org_id, fresh=True).parse(0, items)
    return batch


@dataclass(slots=True)
class _Job:
    """One request's batch waiting for its write: ``outcome`` is set once its group is
    committed (the counts) or refused (the batch's error)."""

    actor: Actor
    org_id: int
    received: int
    rows: list[Row]
    outcome: dict[str, Any] | BaseException | None = None


@dataclass(slots=True)
class _Writer:
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: list[_Job] = field(default_factory=list)
    uncheckpointed: int = 0  # events committed since the last checkpoint


def _writer(engine: Engine) -> _Writer:
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        return _writers.setdefault(key, _Writer())


def _write(engine: Engine, job: _Job) -> dict[str, Any]:
    """Writes ``job`` — on SQLite with the batches queued beside it (group commit)."""
    if engine.dialect.name != "sqlite":
        _write_group(engine, [job])
    else:
        writer = _writer(engine)
        with _lock:
            writer.queue.append(job)
        group: list[_Job] = []
        with writer.lock:
            if job.outcome is None:  # not written yet by the group before: lead this one
                with _lock:
                    group, writer.queue[:] = list(writer.queue), []
                _write_group(engine, group)
        if group:
            _checkpoint_now_and_then(engine, writer, sum(len(j.rows) for j in group))
    if isinstance(job.outcome, BaseException):
        raise job.outcome
    assert job.outcome is not None
    return job.outcome


def _write_group(engine: Engine, group: list[_Job]) -> None:
    """One transaction for ``group``, one savepoint per batch; a failure of the commit itself
    is every batch's error."""
    outcomes: list[dict[str, Any] | BaseException] = []
    try:
        with engine.connect() as conn, _without_autocheckpoint(conn), conn.begin():
            ingesters: dict[int, Ingester] = {}
            for job in group:
                savepoint = conn.begin_nested() if len(group) > 1 else None
                try:
                    ingester = ingesters.get(job.org_id)
                    if ingester is None:
                        ingester = ingesters[job.org_id] = Ingester(conn, job.org_id)
                    outcomes.append(_write_one(conn, ingester, job))
                except Exception as exc:  # this batch's own refusal (or database error)
                    if savepoint is None:
                        raise
                    savepoint.rollback()
                    outcomes.append(exc)
                else:
                    if savepoint is not None:
                        savepoint.commit()
    except BaseException as exc:  # handed to each waiting request
        for job in group:
            job.outcome = exc
        return
    for job, outcome in zip(group, outcomes, strict=True):
        job.outcome = outcome


@contextmanager
def _without_autocheckpoint(conn: Connection) -> Iterator[None]:
    """On SQLite, ``conn`` commits without checkpointing (see the module's docstring), with a
    page cache that holds a group's pages; both put back to SQLite's defaults after."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.driver_connection
    driver.execute("PRAGMA wal_autocheckpoint=0")
    driver.execute(f"PRAGMA cache_size={_GROUP_CACHE_KIB}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_AUTOCHECKPOINT}")
        driver.execute(f"PRAGMA cache_size={_SQLITE_CACHE_KIB}")


def _checkpoint_now_and_then(engine: Engine, writer: _Writer, events: int) -> None:
    """A passive checkpoint (it neither waits for nor blocks the writers) once every
    :data:`CHECKPOINT_EVENTS` events committed by the groups."""
    with _lock:
        writer.uncheckpointed += events
        if writer.uncheckpointed < CHECKPOINT_EVENTS:
            return
        writer.uncheckpointed = 0
    raw = engine.raw_connection()
    driver: Any = raw.driver_connection
    try:
        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.OperationalError:
        pass  # the batches are committed; the next checkpoint (or SQLite's own) catches up
    finally:
        raw.close()


def _write_one(conn: Connection, ingester: Ingester, job: _Job) -> dict[str, Any]:
    """Stores one batch in ``conn``'s transaction, or raises the error that refuses it."""
    archived = _archived(conn, job.org_id, job.rows)
    if archived:
        raise StateError(f"usage batch: {len(archived)} event(s) for archived accounts; "
                         "nothing was written", archived)
    inserted, duplicates, conflicts = ingester.insert(job.rows)
    if conflicts:
        raise Conflict(f"usage batch: {len(conflicts)} event id(s) already stored with "
                       "another payload; nothing was written",
                       [Problem(f"[{c.index}].event_id", f"{c.event_id!r} differs from "
                                "the stored event") for c in conflicts])
    audit.record(conn, job.actor, job.org_id, "usage.ingest", "usage_batch",
                 f"{job.rows[0][1]}..{job.rows[-1][1]}"[:80],
                 after={"received": job.received, "inserted": inserted,
                        "duplicates": duplicates})
    return {"received": job.received, "inserted": inserted, "duplicates": duplicates}


def _archived(conn: Connection, org_id: int, rows: list[Row]) -> list[Problem]:
    """The events naming an archived account (no new usage after an archive, as for one
    event), read in the writing transaction: an account archived meanwhile counts."""
    account_ids = sorted({row[0] for row in rows})
    found = {int(account_id): str(reference) for account_id, reference in conn.execute(
        sa.select(accounts.c.id, accounts.c.reference).where(
            accounts.c.organization_id == org_id, ids_in(conn, accounts.c.id, account_ids),
            accounts.c.archived_at.is_not(None)))}
    return [Problem(f"[{index}].account_reference", f"account {found[row[0]]!r} is archived")
            for index, row in enumerate(rows) if row[0] in found]


def _rows(engine: Engine, org_id: int, body: bytes) -> tuple[int, list[Row]]:
    """(events received, their rows), or :class:`Invalid` naming each bad event and field."""
    rows = _parser(engine, org_id, fresh=False).parse_array(body)
    if rows is not None and 1 <= len(rows) <= MAX_EVENTS:
        return len(rows), rows
    try:
        raws = _decode_items(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Invalid("usage batch: expected a JSON array of events",
                      [Problem("", str(exc))]) from None
    if not 1 <= len(raws) <= MAX_EVENTS:
        raise Invalid("usage batch: 1 problem(s)", [Problem(
            "", f"a batch holds 1 to {MAX_EVENTS} events, not {len(raws)}")])
    items = [bytes(raw).decode("utf-8", "surrogatepass") for raw in raws]
    batch = _parse(engine, org_id, items)
    if batch.bad:
        problems = [Problem(f"[{line}]", message.split(": ", 1)[1] if ": " in message
                            else message) for line, _, message in batch.bad]
        raise Invalid(f"usage batch: {len(problems)} problem(s); nothing was written",
                      problems)
    return len(items), batch.rows


def ingest(engine: Engine, actor: Actor, org_id: int, body: bytes) -> dict[str, Any]:
    """``body``: a JSON array of events shaped as the JSONL import's lines (``event_id``,
    ``account_reference``, ``metric_code``, ``timestamp`` with offset, ``value`` as a string
    or integer, ``properties``)."""
    actor.require(USAGE_WRITE)
    actor.require_org(org_id)
    received, rows = _rows(engine, org_id, body)
    return _write(engine, _Job(actor, org_id, received, rows))
