"""``bench/bench_cycle.py --db postgresql`` runs the whole cycle on a throwaway cluster of its
own, reports the server's CPU and settings, and leaves no cluster behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_the_cycle_bench_runs_on_a_throwaway_postgresql_and_stops_it(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_cycle.py"), "--db", "postgresql",
         "--accounts", "3", "--sample", "2", "--senders", "1", "--json",
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["db"] == "postgresql" and summary["invoices"] == 3
    # PostgreSQL's default durability, not the tests' fsync=off
    assert summary["db_facts"]["fsync"] == "on"
    assert summary["db_facts"]["synchronous_commit"] == "on"
    assert summary["db_facts"]["server"].split()[0][0].isdigit()
    stages = {row["stage"]: row for row in summary["stages"]}
    assert stages["guard + DKIM + send + ledger"]["outbox"] == {"sent": 3}
    assert stages["ledger verify"]["ok"] is True
    # the server's CPU is measured for every stage and summed apart from the bench's
    # (a 3-account cycle may cost the server less than the 10 ms a clock tick counts — CI
    # has measured 0.0 — so the run's figure, seed included, is the one that must show)
    assert all(row["server_cpu_s"] >= 0 for row in summary["stages"])
    assert sum(row["server_cpu_s"] for row in summary["stages"]) > 0
    assert summary["cycle_server_cpu_s"] >= 0
    assert summary["cycle_cpu_with_server_s"] >= summary["cycle_cpu_s"]
    # stopped, its folder removed
    assert not Path(summary["db_facts"]["data_directory"]).parent.exists()
