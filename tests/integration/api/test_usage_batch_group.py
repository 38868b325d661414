"""Group commit of ``POST /v1/usage/batch`` on SQLite: batches queued while another writes
are stored in one transaction, each in a savepoint, each answered with its own outcome."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import accounts, ingest, ingest_group
from sealbill.app.context import local_actor
from sealbill.app.errors import AppError, Conflict, StateError
from sealbill.store.db import create_engine
from sealbill.store.schema import audit_log, usage_events
from tests.integration.api.world import build_org


def _body(ids: range, value: str = "3", account: str = "C001") -> bytes:
    return json.dumps([{"event_id": f"g-{i}", "account_reference": account,
                        "metric_code": "api_calls", "timestamp": "2026-10-03T00:00:00Z",
                        "value": value} for i in ids]).encode()


def _in_one_group(engine: Engine, org_id: int, bodies: list[bytes]) -> list[Any]:
    """Each body's answer (counts or the error), the bodies queued in this order while the
    writer's turn is held, so that one request writes them all in one transaction."""
    writer = ingest_group.writer(engine)
    answers: list[Any] = [None] * len(bodies)

    def post(index: int) -> None:
        try:
            answers[index] = ingest.ingest(engine, local_actor(), org_id, bodies[index])
        except AppError as exc:
            answers[index] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    with ingest_group._lock:  # the writer's turn taken: the batches queue
        writer.busy = True
    for index, thread in enumerate(threads):
        thread.start()
        deadline = time.monotonic() + 10
        while len(writer.queue) < index + 1:
            assert time.monotonic() < deadline, "batch never queued"
            time.sleep(0.001)
    with ingest_group._lock:
        writer.busy = False
        writer.arrived.notify_all()
    for thread in threads:
        thread.join(30)
    assert not writer.queue
    return answers


def _stored(engine: Engine) -> dict[str, str]:
    with engine.begin() as conn:
        return {str(e): str(v) for e, v in conn.execute(sa.select(
            usage_events.c.event_id, usage_events.c.value).where(
            usage_events.c.event_id.like("g-%")))}


def _audited(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
            audit_log.c.action == "usage.ingest")).scalar())


def test_two_batches_in_one_group_sharing_an_event_id_store_it_once(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    audited = _audited(sqlite_engine)
    first, second = _in_one_group(sqlite_engine, org.org_id,
                                  [_body(range(0, 10)), _body(range(9, 15))])
    assert first == {"received": 10, "inserted": 10, "duplicates": 0}
    assert second == {"received": 6, "inserted": 5, "duplicates": 1}
    assert sorted(_stored(sqlite_engine)) == sorted(f"g-{i}" for i in range(15))
    assert _audited(sqlite_engine) == audited + 2


def test_a_refused_batch_in_a_group_is_rolled_back_alone(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    audited = _audited(sqlite_engine)
    first, refused, third = _in_one_group(sqlite_engine, org.org_id, [
        _body(range(0, 3)),
        # g-2 with another value than in the first batch of the group: a conflict
        json.dumps(json.loads(_body(range(100, 103))) + json.loads(_body(range(2, 3), "7"))
                   ).encode(),
        _body(range(200, 202))])
    assert first == {"received": 3, "inserted": 3, "duplicates": 0}
    assert isinstance(refused, Conflict)
    assert [p.field for p in refused.problems] == ["[3].event_id"]
    assert third == {"received": 2, "inserted": 2, "duplicates": 0}
    assert _stored(sqlite_engine) == {
        **{f"g-{i}": "3" for i in range(3)}, **{f"g-{i}": "3" for i in range(200, 202)}}
    assert _audited(sqlite_engine) == audited + 2


def test_a_group_of_new_events_is_stored_and_each_batch_answered_its_own_counts(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    audited = _audited(sqlite_engine)
    answers = _in_one_group(sqlite_engine, org.org_id, [
        _body(range(0, 5)), _body(range(5, 12)), _body(range(12, 13))])
    assert answers == [{"received": n, "inserted": n, "duplicates": 0} for n in (5, 7, 1)]
    assert sorted(_stored(sqlite_engine)) == sorted(f"g-{i}" for i in range(13))
    assert _audited(sqlite_engine) == audited + 3


def test_a_batch_for_an_archived_account_in_a_group_is_refused_alone(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    from tests.e2e.catalog_fixture import ACCOUNTS

    root = local_actor()
    archived = accounts.create(sqlite_engine, root, org.org_id, ACCOUNTS[1])
    accounts.archive(sqlite_engine, root, org.org_id, archived["id"])
    first, refused, third = _in_one_group(sqlite_engine, org.org_id, [
        _body(range(0, 2)), _body(range(10, 12), account="C002"), _body(range(20, 23))])
    assert first == {"received": 2, "inserted": 2, "duplicates": 0}
    assert isinstance(refused, StateError)
    assert [p.field for p in refused.problems] == ["[0].account_reference",
                                                   "[1].account_reference"]
    assert third == {"received": 3, "inserted": 3, "duplicates": 0}
    assert sorted(_stored(sqlite_engine)) == ["g-0", "g-1", "g-20", "g-21", "g-22"]


def test_the_writers_connection_is_closed_when_its_engine_is_disposed(
        sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    org = build_org(engine, "alpha", 1)
    ingest.ingest(engine, local_actor(), org.org_id, _body(range(0, 3)))
    kept = ingest_group.writer(engine).conn
    assert kept is not None and not kept.closed
    engine.dispose()
    assert kept.closed
    assert ingest_group.writer(engine).conn is None  # a fresh writer if used again
    ingest.ingest(engine, local_actor(), org.org_id, _body(range(3, 5)))
    assert len(_stored(engine)) == 5
    engine.dispose()


def _db_file_size(engine: Engine) -> int:
    return Path(str(engine.url.database)).stat().st_size


def test_a_group_commits_without_checkpoint_and_a_checkpoint_follows_every_n_events(
        sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    raw = sqlite_engine.raw_connection()  # no transaction around the checkpoint
    raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    raw.close()
    size = _db_file_size(sqlite_engine)
    monkeypatch.setattr(ingest_group, "CHECKPOINT_EVENTS", 10**9)
    ingest.ingest(sqlite_engine, local_actor(), org.org_id, _body(range(0, 3000)))
    assert _db_file_size(sqlite_engine) == size  # the new pages are in the WAL only
    monkeypatch.setattr(ingest_group, "CHECKPOINT_EVENTS", 1000)
    ingest.ingest(sqlite_engine, local_actor(), org.org_id, _body(range(3000, 4000)))
    assert _db_file_size(sqlite_engine) > size  # checkpointed into the database file
    assert len(_stored(sqlite_engine)) == 4000


def test_the_connections_go_back_to_the_pool_with_sqlites_defaults(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    for start in range(0, 30, 10):
        ingest.ingest(sqlite_engine, local_actor(), org.org_id, _body(range(start, start + 10)))
    pooled = [sqlite_engine.raw_connection() for _ in range(2)]  # no BEGIN IMMEDIATE
    try:
        for raw in pooled:
            driver: Any = raw.driver_connection
            assert driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
            assert driver.execute("PRAGMA cache_size").fetchone()[0] == -2000
    finally:
        for raw in pooled:
            raw.close()
