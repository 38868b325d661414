"""``sealbill run status`` of a run in the workers' hands: its queue stage by stage (read from
the database), in the text report and in ``--json``; a run of the embedded mode (SQLite)
reports as before, with no queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import distributed
from sealbill.app.context import Actor
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.billing.queued_rating import RATE_CHUNK_ENV
from sealbill.workers.run import init_schema
from tests.support.scenario import build_scenario, seed_organization

ROOT = Actor("local:test", "admin")
SRC = Path(__file__).resolve().parents[3] / "src"


def _status(db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", "run", "status", "2026-10",
                           "--org", "acme-cloud", "--db", db, *extra],
                          capture_output=True, text=True, timeout=120, env={
                              **os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}"
                              f"{os.environ.get('PYTHONPATH', '')}"})


def test_run_status_of_a_queued_run_shows_each_stage_of_its_queue(
        pg_engine: Engine, pg_url: str, tmp_path: Path) -> None:
    init_schema(pg_url)
    org_id, _ = seed_organization(pg_engine, accounts=2, files_dir=tmp_path)
    distributed.start(pg_engine, ROOT, org_id, "2026-10")

    as_json = _status(pg_url, "--json")
    queue = json.loads(as_json.stdout)["queue"]
    stages = {s["stage"]: s for s in queue["stages"]}
    assert list(stages) == ["rating", "finalization", "rendering", "plan", "canary",
                            "sending", "verification"]
    assert stages["rating"] | {"state": "waiting", "total": 1, "waiting": 1, "done": 0,
                               "failed": 0, "retried": 0} == stages["rating"]
    assert all(s["total"] == 0 and s["state"] == "waiting" for s in queue["stages"][1:])
    assert queue["rating"] == {"chunks": 1, "rated": 0, "not_billed": []}
    assert queue["workers"] == []

    text = _status(pg_url)
    assert "rating: waiting, 0/1 done, 1 waiting" in text.stdout, text.stdout + text.stderr
    assert "workers on this run now: none" in text.stdout


def test_run_status_of_an_embedded_run_has_no_queue(sqlite_engine: Engine, sqlite_url: str,
                                                    tmp_path: Path) -> None:
    build_scenario(sqlite_engine, accounts=2, files_dir=tmp_path)
    done = _status(sqlite_url, "--json")
    assert done.returncode != 2, done.stderr
    assert "queue" not in json.loads(done.stdout)
    assert "queue (jobs" not in _status(sqlite_url).stdout


def _take(engine: Engine, worker: int) -> int:
    """The next job, taken as a worker takes it (Procrastinate's own fetch function)."""
    with engine.begin() as conn:
        return int(conn.execute(sa.text(
            "SELECT id FROM procrastinate_fetch_job_v2(ARRAY['sealbill']::varchar[], :w)"),
            {"w": worker}).scalar_one())


def test_stages_count_jobs_running_retried_and_failed_and_name_the_workers_on_them(
        pg_engine: Engine, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    init_schema(pg_url)
    monkeypatch.setenv(RATE_CHUNK_ENV, "1")
    org_id, _ = seed_organization(pg_engine, accounts=3, files_dir=tmp_path)
    run = distributed.start(pg_engine, ROOT, org_id, "2026-10")
    with pg_engine.begin() as conn:
        run_id = run_row_id(conn, org_id, run["run_id"])
        worker = int(conn.execute(sa.text(
            "SELECT worker_id FROM procrastinate_register_worker_v1()")).scalar_one())
    first = _take(pg_engine, worker)
    seen = distributed.progress_of(pg_engine, org_id, run_id)
    assert seen["stages"][0] | {"total": 3, "running": 1, "waiting": 2, "state": "running"} \
        == seen["stages"][0]
    assert [(w["worker"], w["running"]) for w in seen["workers"]] == [(worker, 1)]

    with pg_engine.begin() as conn:  # the job raised: retried later, then failed for good
        conn.execute(sa.text("SELECT procrastinate_retry_job_v2(:j, now(), NULL, NULL, NULL)"),
                     {"j": first})
    again = _take(pg_engine, worker)
    second = _take(pg_engine, worker)
    with pg_engine.begin() as conn:
        for job, end in ((again, "failed"), (second, "succeeded")):
            conn.execute(sa.text("SELECT procrastinate_finish_job_v1(:j, :s, false)"),
                         {"j": job, "s": end})
    rating = distributed.progress_of(pg_engine, org_id, run_id)["stages"][0]
    assert {k: rating[k] for k in ("total", "done", "waiting", "running", "failed", "retried",
                                   "state")} == {"total": 3, "done": 1, "waiting": 1,
                                                 "running": 0, "failed": 1, "retried": 1,
                                                 "state": "waiting"}
    assert distributed.queue_totals(pg_engine, org_id) == {
        run_id: {"done": 1, "total": 3, "failed": 1}}
    assert distributed.progress_of(pg_engine, org_id, run_id)["workers"] == []
