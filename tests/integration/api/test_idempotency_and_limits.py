"""Idempotency-Key under concurrency (one effect), replay and misuse; per-key rate limits."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import operators, organizations
from sealbill.app.context import local_actor
from sealbill.store.schema import accounts, audit_log
from tests.e2e.catalog_fixture import ACCOUNTS, ORG
from tests.support.api_server import serving


def _key(engine: Engine) -> str:
    root = local_actor()
    organizations.create(engine, root, ORG)
    operators.create_operator(engine, root, "alice@acme.example", "Alice",
                              "correct horse battery")
    return str(operators.create_key(engine, root, 1, "alice@acme.example", "admin")["key"])


def test_the_same_idempotency_key_sent_twice_at_once_has_one_effect(any_engine: Engine
                                                                     ) -> None:
    key = _key(any_engine)
    headers = {"Authorization": f"Bearer {key}"}
    with serving(any_engine) as base:
        for attempt in range(3):  # several races, each with its own key
            body = {**ACCOUNTS[0], "reference": f"C00{attempt}"}
            h = {**headers, "Idempotency-Key": f"create-C001-{attempt}"}
            answers = _race(base, body, h)
            assert [a.status_code for a in answers] == [201, 201]
            assert answers[0].json() == answers[1].json()  # the second is the first, replayed
            assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == [
                "", "true"]
    with any_engine.begin() as conn:
        created = conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar()
        audited = conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
            audit_log.c.action == "account.create")).scalar()
    assert created == 3 and audited == 3


def _race(base: str, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    """The same request sent by two threads released at the same instant."""
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def send() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            barrier.wait()
            answers.append(client.post("/v1/accounts", json=body, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_a_key_reused_with_another_body_is_a_409_problem_naming_the_header(
        sqlite_engine: Engine) -> None:
    key = _key(sqlite_engine)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k1"}
    with serving(sqlite_engine) as base, httpx.Client(base_url=base) as client:
        first = client.post("/v1/accounts", json=ACCOUNTS[0], headers=headers)
        other = client.post("/v1/accounts", json=ACCOUNTS[1], headers=headers)
        again = client.post("/v1/accounts", json=ACCOUNTS[0], headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_a_key_over_its_rate_gets_429_with_retry_after(sqlite_engine: Engine) -> None:
    key = _key(sqlite_engine)
    with serving(sqlite_engine, rate=0.2, burst=3) as base, httpx.Client(base_url=base) as c:
        codes = [c.get("/v1/accounts", headers={"Authorization": f"Bearer {key}"})
                 for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert codes[-1].json()["status"] == 429


def test_two_servers_on_one_database_share_each_keys_limit(any_engine: Engine) -> None:
    """Two server instances (each its own engine, as two processes would have) on one
    database: a key's budget is spent across both, not once per server."""
    from sealbill.store.db import create_engine

    key = _key(any_engine)
    headers = {"Authorization": f"Bearer {key}"}
    other = create_engine(any_engine.url.render_as_string(hide_password=False))
    try:
        with serving(any_engine, rate=0.05, burst=4) as first, \
                serving(other, rate=0.05, burst=4) as second, \
                httpx.Client(base_url=first) as a, httpx.Client(base_url=second) as b:
            codes = [(a if i % 2 else b).get("/v1/accounts", headers=headers)
                     for i in range(6)]
    finally:
        other.dispose()
    assert [r.status_code for r in codes] == [200, 200, 200, 200, 429, 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in codes[4:])


def test_a_take_stamped_before_the_buckets_last_update_still_gets_its_tokens(
        any_engine: Engine) -> None:
    """Threads and processes stamp ``now`` before their statement runs, so one may reach the
    row after a later-stamped update: at a high rate, a negative refill emptied the bucket
    and a key far below its limit got 429 (the ingestion bench did, at 10⁹ a second)."""
    from sealbill.store import rate_limits
    from sealbill.store.schema import api_keys

    _key(any_engine)
    with any_engine.connect() as conn:
        key_id = conn.execute(sa.select(api_keys.c.id)).scalars().first()
    rate, burst = 1e9, 20
    first = rate_limits.take(any_engine, key_id, now=1_000.5, rate=rate, burst=burst, want=burst)
    late = rate_limits.take(any_engine, key_id, now=1_000.0, rate=rate, burst=burst, want=burst)
    after = rate_limits.take(any_engine, key_id, now=1_000.6, rate=rate, burst=burst, want=burst)
    assert first[0] == burst
    assert late == (0, 0.0)  # nothing refilled by a stamp from the past, nothing negative
    assert after[0] == burst  # refilled from the row's own (later) stamp
