"""``POST /v1/runs/enqueue`` and ``GET /v1/runs/{id}/progress``: a run started on the workers'
queue through the API (PostgreSQL), idempotent, audited, scoped to its organization; on SQLite
an RFC 9457 problem saying the distributed cycle needs PostgreSQL, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.api.schemas import RunProgress
from sealbill.workers.run import init_schema
from tests.integration.api.world import build_org


def _jobs(engine: Engine) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        return [(str(t), str(s)) for t, s in conn.execute(sa.text(
            "SELECT task_name, status FROM procrastinate_jobs ORDER BY id"))]


def test_a_run_enqueued_through_the_api_is_202_with_its_progress_once_per_key(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    init_schema(pg_url)
    a, b = build_org(pg_engine, "alpha", 1), build_org(pg_engine, "beta", 2)
    client = TestClient(create_app(pg_engine, rate=10_000, burst=10_000))
    headers = {"Authorization": f"Bearer {a.keys['admin']}", "Idempotency-Key": "start-12"}
    first = client.post("/v1/runs/enqueue", headers=headers, json={"period": "2026-12"})
    assert first.status_code == 202, first.text
    body = RunProgress.model_validate(first.json())
    assert body.status == "drafted" and body.enqueued == ["sealbill.rate"]
    assert body.jobs == {"todo": 1} and body.rating["chunks"] == 1
    assert (body.stages[0]["stage"], body.stages[0]["waiting"], body.workers) == (
        "rating", 1, [])
    assert first.headers["location"] == body.progress_url == f"/v1/runs/{body.run_id}/progress"
    again = client.post("/v1/runs/enqueue", headers=headers, json={"period": "2026-12"})
    assert (again.status_code, again.json()) == (202, first.json())  # replayed, not redone
    assert _jobs(pg_engine) == [("sealbill.rate", "todo")]

    read = client.get(body.progress_url, headers={"Authorization": f"Bearer {a.keys['read-only']}"})
    assert read.status_code == 200 and read.json()["run_id"] == body.run_id
    entries = client.get("/v1/audit?limit=1000", headers=headers).json()["items"]
    assert [e["api_key"] for e in entries if e["action"] == "run.enqueue"] == [
        a.keys["admin"][:16]]
    other = {"Authorization": f"Bearer {b.keys['admin']}"}
    assert client.get(body.progress_url, headers=other).status_code == 404
    refused = client.post("/v1/runs/enqueue", json={"period": "2026-12"},
                          headers={"Authorization": f"Bearer {a.keys['read-only']}"})
    assert refused.status_code == 403


def test_on_sqlite_enqueueing_is_a_problem_saying_postgresql_is_needed(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    a = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine, rate=10_000, burst=10_000))
    headers = {"Authorization": f"Bearer {a.keys['admin']}"}
    answer = client.post("/v1/runs/enqueue", headers=headers, json={"period": "2026-12"})
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["title"] == "The distributed cycle needs PostgreSQL"
    assert "needs PostgreSQL" in problem["detail"] and "run bill" in problem["detail"]
    listed = client.get("/v1/runs", headers=headers).json()
    assert [r["period"] for r in listed["items"]] == ["2026-11"] and not listed["next_cursor"]
    progress = client.get(f"/v1/runs/{a.ids['run_id']}/progress", headers=headers)
    assert progress.status_code == 409 and "needs PostgreSQL" in progress.json()["detail"]


def test_approving_a_held_run_in_the_workers_hands_enqueues_its_canary(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    init_schema(pg_url)
    a = build_org(pg_engine, "alpha", 1)  # its 2026-11 run is billed and finalized already
    client = TestClient(create_app(pg_engine, rate=10_000, burst=10_000))
    admin, run = {"Authorization": f"Bearer {a.keys['admin']}"}, a.ids["run_id"]
    resumed = client.post("/v1/runs/enqueue", headers=admin, json={"period": "2026-11"})
    assert resumed.status_code == 202 and resumed.json()["enqueued"] == ["sealbill.render"]
    # The stages a worker would run, run here through the API instead.
    assert client.post(f"/v1/runs/{run}/render", headers=admin).status_code == 200
    held = client.post(f"/v1/runs/{run}/plan", headers=admin,
                       json={"policy": {"first_cycle": "hold"}})
    assert held.status_code == 200, held.text
    assert client.get(f"/v1/runs/{run}/progress", headers=admin).json()["status"] == "held"
    approved = client.post(f"/v1/runs/{run}/approve", json={"reason": "diff checked"},
                           headers={"Authorization": f"Bearer {a.keys['approver']}"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["enqueued"] == ["sealbill.canary"]
    assert ("sealbill.canary", "todo") in _jobs(pg_engine)
