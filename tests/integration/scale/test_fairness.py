"""Several organizations' runs at once on the same workers: a small organization's run started
together with a large one's finishes long before it (its jobs are not queued behind the large
run's; see ``sealbill.workers.advance``). "Long before" is counted in jobs the one worker
started, which the machine's load cannot change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app.distributed import enqueue_run
from tests.integration.scale.conftest import Workers, verified_at
from tests.support.scenario import seed_organization

LARGE, SMALL = 80, 4


def test_a_small_organizations_run_is_not_starved_by_a_large_ones(
        pg_engine: Engine, workers: Workers, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"SEALBILL_RATE_CHUNK": "10", "SEALBILL_RENDER_CHUNK": "5",
             "SEALBILL_SEND_CHUNK": "10", "SEALBILL_SEND_SLICES": "1"}
    workers.env.update(sizes)
    for name, value in sizes.items():  # the run is enqueued (and chunked) by this process
        monkeypatch.setenv(name, value)
    large, _ = seed_organization(pg_engine, accounts=LARGE, files_dir=tmp_path / "l",
                                 slug="large")
    small, _ = seed_organization(pg_engine, accounts=SMALL, files_dir=tmp_path / "s",
                                 slug="small")
    subprocess.run([sys.executable, "-m", "sealbill", "worker", "init-schema"], check=True,
                   env=workers.env)
    # Both enqueued before any worker runs, the large one first: one worker taking one job
    # at a time, so the order of jobs is the queue's alone.
    large_run, _ = enqueue_run(pg_engine, large, "2026-10", actor="test")
    small_run, _ = enqueue_run(pg_engine, small, "2026-10", actor="test")
    workers.start("w1", concurrency=1)
    workers.wait_for("both runs verified", lambda: verified_at(pg_engine, large_run) is not None
                     and verified_at(pg_engine, small_run) is not None, 300)
    with pg_engine.begin() as conn:
        started = float(conn.execute(sa.text(
            "SELECT min(extract(epoch FROM at)) FROM procrastinate_events "
            "WHERE type = 'started'")).scalar_one())
        order = [(str(t), int(r)) for t, r in conn.execute(sa.text(
            "SELECT j.task_name, (j.args->>'run_id')::bigint FROM procrastinate_events e "
            "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE e.type = 'started' "
            "AND j.args ? 'run_id' ORDER BY e.at, e.id"))]
    # Before the small run is done, the large one got at most its first chunk of a stage or
    # two (whatever was queued before the small run's next job), none of its many others.
    small_done = order.index(("sealbill.verify", small_run))
    before = [t for t, r in order[:small_done] if r == large_run]
    assert len(before) <= 3, before
    assert len([t for t, r in order if r == large_run]) > 30
    # Judged by the queue's order, not by wall-clock time: under a loaded machine the two
    # durations say more about the scheduler than about fairness. The small run is done within
    # its own jobs plus the large run's few, i.e. in the first fraction of all jobs.
    print(f"\nsmall run done at job {small_done} of {len(order)}")
    assert small_done < len(order) / 4, (small_done, len(order))
    small_took = (verified_at(pg_engine, small_run) or 0) - started
    large_took = (verified_at(pg_engine, large_run) or 0) - started
    print(f"\nsmall run {small_took:.1f} s, large run {large_took:.1f} s")
    assert (verified_at(pg_engine, small_run) or 0) < (verified_at(pg_engine, large_run) or 0)
