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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_parsers: dict[tuple[str, int], RowParser] = {}
_lock = threading.Lock()
_writers: dict[str, threading.Lock] = {}


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


@contextmanager
def _write_turn(engine: Engine) -> Iterator[None]:
    """On SQLite, this process's batches write one at a time (see the module's docstring)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        writer = _writers.setdefault(key, threading.Lock())
    with writer:
        yield


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
    with _write_turn(engine), engine.begin() as conn:
        archived = _archived(conn, org_id, rows)
        if archived:
            raise StateError(f"usage batch: {len(archived)} event(s) for archived accounts; "
                             "nothing was written", archived)
        inserted, duplicates, conflicts = Ingester(conn, org_id).insert(rows)
        if conflicts:
            raise Conflict(f"usage batch: {len(conflicts)} event id(s) already stored with "
                           "another payload; nothing was written",
                           [Problem(f"[{c.index}].event_id", f"{c.event_id!r} differs from "
                                    "the stored event") for c in conflicts])
        audit.record(conn, actor, org_id, "usage.ingest", "usage_batch",
                     f"{rows[0][1]}..{rows[-1][1]}"[:80],
                     after={"received": received, "inserted": inserted,
                            "duplicates": duplicates})
    return {"received": received, "inserted": inserted, "duplicates": duplicates}
