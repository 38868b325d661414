"""What a run's state calls for (read from the tables), and enqueueing in our transaction."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import distributed
from sealbill.app.context import Actor
from sealbill.app.errors import StateError
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.store.schema import billing_runs, verification_tokens
from sealbill.workers import advance, links
from sealbill.workers.queue import make_app
from sealbill.workers.run import init_schema
from tests.support.scenario import build_scenario, seed_organization

ROOT = Actor("local:test", "admin")


def _jobs(engine: Engine) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        return [(str(t), str(s)) for t, s in conn.execute(sa.text(
            "SELECT task_name, status FROM procrastinate_jobs ORDER BY id"))]


def test_start_writes_the_run_and_its_first_job_together_and_never_twice(
        pg_engine: Engine, pg_url: str, tmp_path: Path) -> None:
    init_schema(pg_url)
    org_id, _ = seed_organization(pg_engine, accounts=2, files_dir=tmp_path)
    first = distributed.start(pg_engine, ROOT, org_id, "2026-10")
    again = distributed.start(pg_engine, ROOT, org_id, "2026-10")  # waiting: not enqueued
    assert first["enqueued"] == ["sealbill.rate"] and again["enqueued"] == []
    assert first["status"] == "drafted" and first["jobs"] == {"todo": 1}
    assert _jobs(pg_engine) == [("sealbill.rate", "todo")]


def test_a_held_run_waits_and_a_planned_one_calls_for_its_canary(
        pg_engine: Engine, pg_url: str, tmp_path: Path) -> None:
    init_schema(pg_url)
    world = build_scenario(pg_engine, accounts=3, files_dir=tmp_path)
    with pg_engine.begin() as conn:
        assert [w.task for w in advance.wanted(conn, world.org_id, world.run_id)] == [
            "sealbill.plan"]
    from sealbill.domain.delivery_plan import DeliveryPolicy

    plan_run(pg_engine, world.org_id, world.run_id, actor="planner",
             policy=DeliveryPolicy.from_mapping({"first_cycle": "hold"}))
    with pg_engine.begin() as conn:
        assert advance.wanted(conn, world.org_id, world.run_id) == []  # the diff gate waits
        conn.execute(sa.update(billing_runs).values(status="approved"))
        assert [w.task for w in advance.wanted(conn, world.org_id, world.run_id)] == [
            "sealbill.canary"]


def test_expired_links_are_revoked_once(pg_engine: Engine, tmp_path: Path) -> None:
    world = build_scenario(pg_engine, accounts=1, files_dir=tmp_path, render=False)
    now = datetime.now(UTC)
    contact_id = next(iter(world.contact_ids.values()))
    with pg_engine.begin() as conn:
        for name, expires in (("old", now - timedelta(days=1)), ("new", now + timedelta(days=1))):
            conn.execute(sa.insert(verification_tokens).values(
                organization_id=world.org_id, contact_id=contact_id,
                account_id=world.account_ids["A0001"], purpose="verify",
                token_hash=name.ljust(64, "0"), created_at=now - timedelta(days=2),
                expires_at=expires))
    assert links.expire(pg_engine, now) == 1
    assert links.expire(pg_engine, now) == 0
    with pg_engine.begin() as conn:
        assert conn.execute(sa.select(verification_tokens.c.revoked_reason).where(
            verification_tokens.c.token_hash == "old".ljust(64, "0"))).scalar() == "expired"


def test_run_start_on_sqlite_says_the_distributed_path_needs_postgresql(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(StateError, match="needs PostgreSQL"):
        distributed.start(sqlite_engine, ROOT, 1, "2026-10")
    done = subprocess.run([sys.executable, "-m", "sealbill", "run", "start", "--org", "acme",
                           "--period", "2026-10", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "needs PostgreSQL" in done.stderr


def test_a_small_run_is_not_queued_behind_a_large_one(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_schema(pg_url)
    monkeypatch.setenv(advance.RENDER_CHUNK_ENV, "2")
    large = build_scenario(pg_engine, accounts=6, files_dir=tmp_path / "l", slug="large",
                           render=False)
    small = build_scenario(pg_engine, accounts=2, files_dir=tmp_path / "s", slug="small",
                           render=False)
    app = make_app(pg_url)
    with pg_engine.begin() as conn:  # the large run asked first
        assert advance.advance(conn, app, large.org_id, large.run_id) == ["sealbill.render"] * 3
        assert advance.advance(conn, app, small.org_id, small.run_id) == ["sealbill.render"]
        # Procrastinate's fetch order: highest priority first, then the oldest.
        order = [int(r) for r in conn.execute(sa.text(
            "SELECT (args->>'run_id')::bigint FROM procrastinate_jobs "
            "ORDER BY priority DESC, id")).scalars()]
    assert order == [large.run_id, small.run_id, large.run_id, large.run_id]
