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
takes the fast path; on SQLite the batches of one process are written by group commit
(``app/ingest_group.py``).
"""

from __future__ import annotations

import threading
from typing import Any

import msgspec
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ingest_group
from sealbill.app.context import USAGE_WRITE, Actor
from sealbill.app.errors import Conflict, Invalid, Problem, StateError
from sealbill.app.ingest_group import Job
from sealbill.inputs.usage import MetricRule
from sealbill.pipeline.billing.usage_rows import Batch, RowParser
from sealbill.store.billing.catalog import load_metrics
from sealbill.store.billing.usage_ingest import Ingester, Row
from sealbill.store.parties import records as parties

MAX_EVENTS = 10_000
_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_parsers: dict[tuple[str, int], RowParser] = {}
_lock = threading.Lock()


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


def _write(engine: Engine, job: Job) -> dict[str, Any]:
    """Writes ``job`` — on SQLite with the batches queued beside it (group commit)."""
    if engine.dialect.name == "sqlite":
        ingest_group.write(engine, job, _write_one)
    else:
        try:
            with engine.begin() as conn:
                job.outcome = _write_one(conn, job, Ingester(conn, job.org_id).insert)
        except BaseException as exc:
            job.outcome = exc
    if isinstance(job.outcome, BaseException):
        raise job.outcome
    assert job.outcome is not None
    return job.outcome


def _write_one(conn: Connection, job: Job, insert: ingest_group.Insert) -> dict[str, Any]:
    """Stores one batch in ``conn``'s transaction, or raises the error that refuses it."""
    archived = _archived(conn, job.org_id, job.rows)
    if archived:
        raise StateError(f"usage batch: {len(archived)} event(s) for archived accounts; "
                         "nothing was written", archived)
    inserted, duplicates, conflicts = insert(job.rows)
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
    found = parties.archived_among(conn, org_id, {row[0] for row in rows})
    if not found:
        return []
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
    if engine.dialect.name != "sqlite":
        received, rows = _rows(engine, org_id, body)
        return _write(engine, Job(actor, org_id, received, rows))
    ingest_group.parsing(engine, +1)  # the writer may wait for this batch to join its group
    try:
        received, rows = _rows(engine, org_id, body)
    except BaseException:
        ingest_group.parsing(engine, -1)
        raise
    return _write(engine, Job(actor, org_id, received, rows))
