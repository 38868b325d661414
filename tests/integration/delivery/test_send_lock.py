"""The send lock holds for the database itself, whatever path reaches it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.db import create_engine
from sealbill.store.delivery.send_lock import RunBusy, holder_id, run_lock
from sealbill.store.schema import send_locks
from tests.support.scenario import build_scenario


def test_a_second_sender_through_a_symlinked_path_is_refused(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    scenario = build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path / "f",
                              render=False)
    real = Path(str(sqlite_engine.url.database))
    link = tmp_path / "elsewhere.sqlite"
    link.symlink_to(real)
    other = create_engine(f"sqlite:///{link}")
    try:
        with run_lock(sqlite_engine, scenario.org_id, scenario.run_id):
            with pytest.raises(RunBusy), run_lock(other, scenario.org_id, scenario.run_id):
                pass
            with pytest.raises(RunBusy), run_lock(sqlite_engine, scenario.org_id,
                                                  scenario.run_id):
                pass  # the same process, a second sender: refused as well
        with run_lock(other, scenario.org_id, scenario.run_id):  # released: the next one
            pass
    finally:
        other.dispose()
    with sqlite_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(send_locks)).scalar() == 0


def test_a_killed_senders_lock_is_taken_over(sqlite_engine: Engine, tmp_path: Path) -> None:
    scenario = build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path / "f",
                              render=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite_engine.begin() as conn:  # what a sender killed by SIGKILL leaves behind
        conn.execute(sa.insert(send_locks).values(
            organization_id=scenario.org_id, run_id=scenario.run_id,
            holder=holder_id(dead.pid), acquired_at=sa.func.now()))
    with run_lock(sqlite_engine, scenario.org_id, scenario.run_id):
        with sqlite_engine.begin() as conn:
            holders = conn.execute(sa.select(send_locks.c.holder)).scalars().all()
        assert len(holders) == 1 and f":{dead.pid}:" not in holders[0]
