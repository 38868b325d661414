"""The sender killed with SIGKILL at random points, then restarted: nothing lost, the ledger
intact, and what arrives twice is exactly what SMTP had accepted and the database had not
recorded yet — at most the messages of the sender's current batch (``--batch``, ≤ 100), each
resent identical, with its Message-ID.

The sender runs as a real subprocess (``python -m sealbill run send``) that kills itself at the
n-th message, either just after claiming it (before SMTP) or just after SMTP accepted it
(before the database knows) — the two windows a crash can hit. A sender claims a batch in one
transaction and writes the batch's outcomes in one transaction after SMTP
(:mod:`sealbill.pipeline.delivery.send`), so killed at message n of a batch that started at
message s, the messages s..n-1 (and n, after SMTP) were accepted and not recorded.
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
from sealbill.store.schema import delivery_envelopes, delivery_ledger, invoices, outbox
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


def _send(db: Path, run_id: int, port: int, kill_at: str | None,
          batch: int = 100) -> subprocess.CompletedProcess[str]:
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
         "--db", f"sqlite:///{db}", "--json", "--backoff", "0.05", "--batch", str(batch)],
        env=env, capture_output=True, text=True, timeout=120, check=False)


def _canary_size(db: Path) -> int:
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        size = len(conn.execute(sa.select(delivery_envelopes.c.id).where(
            delivery_envelopes.c.is_canary.is_(True))).all())
    engine.dispose()
    return size


def batch_start(n: int, canary: int, batch: int) -> int:
    """The first message of the batch message ``n`` is sent in (messages counted from 1 in
    the order they go: the canary slice in batches, then the rest in batches)."""
    if n <= canary:
        return (n - 1) // batch * batch + 1
    return canary + (n - canary - 1) // batch * batch + 1


def _after_kill(db: Path) -> dict[str, str]:
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        status = {str(m): str(s) for m, s in conn.execute(
            sa.select(outbox.c.message_id, outbox.c.status))}
    engine.dispose()
    return status


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
    batch = rng.choice([1, 2, 4, 100])

    killed = _send(db, run_id, smtp_server.port, f"{n}:{phase}", batch)
    assert killed.returncode == -9, killed.stderr
    at_kill = _after_kill(db)
    taken = {str(m.message_id) for m in smtp_server.accepted}
    unrecorded = {m for m in taken if at_kill[m] == "sending"}
    restarted = _send(db, run_id, smtp_server.port, None, batch)
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
    duplicates = {mid for mid, count in seen.items() if count > 1}
    # What arrives twice is exactly what SMTP had taken and the database had not recorded:
    # the messages of the batch in flight that went before the kill — at most the batch
    # (fewer if the batch outlived the fresh read and recorded its outcomes midway).
    assert duplicates == unrecorded, (n, phase, batch)
    in_flight = n - batch_start(n, _canary_size(db), batch) + (phase == "smtp_done")
    assert len(duplicates) <= min(in_flight, batch), (n, phase, batch)
    assert max(seen.values()) <= 2
    for mid in duplicates:
        copies = {m.data for m in smtp_server.accepted if m.message_id == mid}
        assert len(copies) == 1  # byte for byte the same message (no DKIM in this test)
    assert report.ok and report.rows == ACCOUNTS
    assert sorted(r.message_id for r in ledger_rows) == sorted(expected)
    assert {r.invoice_number for r in ledger_rows} == numbers


@pytest.mark.parametrize("batch", [1, 100])
@pytest.mark.parametrize("phase", ["claimed", "smtp_done"])
def test_a_crash_leaves_only_its_batch_unrecorded(
        phase: str, batch: int, template: tuple[Path, int, int], tmp_path: Path,
        smtp_server: SmtpCapture) -> None:
    """The outcomes of a batch are written after its last message: killed at message 3, the
    batches before its batch are recorded (``sent``, in the ledger); its batch is left
    ``sending`` — claimed whole, whether SMTP had taken them or not — and the restart sends
    each again with its Message-ID: those SMTP had taken arrive twice, the others once. With
    ``--batch 1`` that is the one message in flight (the bound before batching)."""
    source, _, run_id = template
    db = tmp_path / "db.sqlite"
    shutil.copyfile(source, db)
    canary = _canary_size(db)
    start = batch_start(3, canary, batch)
    end = min(start + batch - 1, canary if canary >= 3 else ACCOUNTS)
    killed = _send(db, run_id, smtp_server.port, f"3:{phase}", batch)
    assert killed.returncode == -9, killed.stderr
    accepted = [str(m.message_id) for m in smtp_server.accepted]
    assert len(accepted) == (3 if phase == "smtp_done" else 2)

    status = _after_kill(db)
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        in_ledger = set(conn.execute(sa.select(delivery_ledger.c.message_id)).scalars())
        order = [str(m) for m in conn.execute(sa.select(outbox.c.message_id).order_by(
            delivery_envelopes.c.is_canary.desc(), outbox.c.id).join(
            delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)).scalars()]
    engine.dispose()
    recorded, in_flight = order[:start - 1], order[start - 1:end]
    assert accepted[:start - 1] == recorded
    assert in_ledger == set(recorded) and {status[m] for m in recorded} <= {"sent"}
    assert {m for m, s in status.items() if s == "sending"} == set(in_flight)
    assert not in_ledger & set(in_flight)
    assert sorted(status.values()).count("queued") == ACCOUNTS - end

    restarted = _send(db, run_id, smtp_server.port, None, batch)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    seen = Counter(str(m.message_id) for m in smtp_server.accepted)
    twice = {m for m, c in seen.items() if c == 2}
    assert twice == set(accepted[start - 1:]) and max(seen.values()) <= 2
    assert len(twice) == 3 - start + (phase == "smtp_done")
    assert set(seen) == set(order)
