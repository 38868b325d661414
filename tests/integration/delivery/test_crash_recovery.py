"""The sender killed with SIGKILL at random points, then restarted: nothing lost, nothing else
sent twice, the in-flight message resent with the same Message-ID, the ledger intact.

The sender runs as a real subprocess (``python -m sealbill run send``) that kills itself at the
n-th message, either just after claiming it (before SMTP) or just after SMTP accepted it
(before the database knows) — the two windows a crash can hit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealbill.pipeline.delivery.plan import plan_run
from sealbill.store.db import create_engine
from sealbill.store.delivery import ledger
from sealbill.store.migrate import upgrade
from sealbill.store.schema import delivery_ledger, invoices, outbox
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture

ACCOUNTS = 6
TRIALS = 20
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    folder = tmp_path_factory.mktemp("crash-template")
    engine = create_engine(f"sqlite:///{folder / 'db.sqlite'}")
    upgrade(engine)
    scenario = build_scenario(engine, accounts=ACCOUNTS, files_dir=folder / "files")
    assert plan_run(engine, scenario.org_id, scenario.run_id, actor="planner").verdict == \
        "proceed"
    engine.dispose()  # checkpoint the WAL: the file alone is the database
    return folder / "db.sqlite", scenario.org_id, scenario.run_id


def _send(db: Path, run_id: int, port: int,
          kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALBILL_SMTP_PORT": str(port), "SEALBILL_SMTP_TIMEOUT": "2",
           "PYTHONPATH": str(ROOT / "src")}
    env.pop("SEALBILL_DKIM_KEY", None)
    env["SEALBILL_DKIM"] = "off"  # unsigned on purpose: these tests read the bytes
    if kill_at:
        env["SEALBILL_TEST_KILL_AT"] = kill_at
    else:
        env.pop("SEALBILL_TEST_KILL_AT", None)
    return subprocess.run(
        [sys.executable, "-m", "sealbill", "run", "send", str(run_id), "--org", "acme-cloud",
         "--db", f"sqlite:///{db}", "--json", "--backoff", "0.05"],
        env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_then_restart_delivers_everything_once(
        trial: int, template: tuple[Path, int, int], tmp_path: Path,
        smtp_server: SmtpCapture) -> None:
    source, org_id, run_id = template
    db = tmp_path / "db.sqlite"
    shutil.copyfile(source, db)
    rng = random.Random(trial)
    n, phase = rng.randint(1, ACCOUNTS), rng.choice(["claimed", "smtp_done"])

    killed = _send(db, run_id, smtp_server.port, f"{n}:{phase}")
    assert killed.returncode == -9, killed.stderr
    restarted = _send(db, run_id, smtp_server.port, None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert json.loads(restarted.stdout)["status"] == "sent"

    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        expected = set(conn.execute(sa.select(outbox.c.message_id)).scalars())
        numbers = set(conn.execute(sa.select(invoices.c.number).where(
            invoices.c.run_id == run_id)).scalars())
        ledger_rows = conn.execute(sa.select(delivery_ledger.c.message_id,
                                             delivery_ledger.c.invoice_number)).all()
        report = ledger.verify(conn, org_id)
    engine.dispose()
    seen = Counter(m.message_id for m in smtp_server.accepted)
    assert set(seen) == expected  # every invoice delivered
    duplicates = [mid for mid, count in seen.items() if count > 1]
    # Only the in-flight message may arrive twice, identical, and only if SMTP had taken it.
    assert len(duplicates) == (1 if phase == "smtp_done" else 0)
    for mid in duplicates:
        copies = {m.data for m in smtp_server.accepted if m.message_id == mid}
        assert len(copies) == 1  # byte for byte the same message (no DKIM in this test)
    assert report.ok and report.rows == ACCOUNTS
    assert sorted(r.message_id for r in ledger_rows) == sorted(expected)
    assert {r.invoice_number for r in ledger_rows} == numbers


@pytest.mark.parametrize("phase", ["claimed", "smtp_done"])
def test_a_crash_leaves_only_the_in_flight_message_unrecorded(
        phase: str, template: tuple[Path, int, int], tmp_path: Path,
        smtp_server: SmtpCapture) -> None:
    """The outcome of message k is written with the claim of k + 1: killed at message 3, the
    first two are recorded (``sent``, in the ledger), the third alone is left ``sending`` —
    whether SMTP had taken it or not — and the restart sends it with its Message-ID."""
    source, _, run_id = template
    db = tmp_path / "db.sqlite"
    shutil.copyfile(source, db)
    killed = _send(db, run_id, smtp_server.port, f"3:{phase}")
    assert killed.returncode == -9, killed.stderr
    accepted = [str(m.message_id) for m in smtp_server.accepted]
    assert len(accepted) == (3 if phase == "smtp_done" else 2)

    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        status = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.status)).all())
        in_ledger = set(conn.execute(sa.select(delivery_ledger.c.message_id)).scalars())
    engine.dispose()
    assert in_ledger == set(accepted[:2]) and {status[m] for m in accepted[:2]} == {"sent"}
    [in_flight] = [m for m, s in status.items() if s == "sending"]
    assert in_flight not in in_ledger
    assert sorted(status.values()).count("queued") == ACCOUNTS - 3

    restarted = _send(db, run_id, smtp_server.port, None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    resent = [str(m.message_id) for m in smtp_server.accepted].count(in_flight)
    assert resent == (2 if phase == "smtp_done" else 1)
