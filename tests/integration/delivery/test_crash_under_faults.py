"""SIGKILL of the sender process at a random point while the SMTP server refuses some
recipients (one address 550, another 450 twice, on a message with two recipients), then the
documented operator step (``run send`` again): every deliverable invoice reached each entitled
recipient once — but for exactly the (message, recipient) pairs SMTP had taken in the sender's
batch that the database had not recorded when it died (at most the batch: ``--batch 1``, the
one message in flight), which arrive twice with the same Message-ID — and ``run status --json``
names the bounced address with the server's reply and the next step. The sender runs as a real
``sealbill run send`` process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.store.db import create_engine
from sealbill.store.delivery import ledger
from sealbill.store.migrate import upgrade
from sealbill.store.parties import records as parties
from sealbill.store.schema import outbox
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture

ACCOUNTS = 5
ROOT = Path(__file__).resolve().parents[3]
BOUNCING = "billing4@client4.example"
DEFERRED = "ap2@client2.example"  # the second recipient of A0002's invoice


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("crash-faults")
    engine = create_engine(f"sqlite:///{folder / 'db.sqlite'}")
    upgrade(engine)
    scenario = build_scenario(engine, accounts=ACCOUNTS, files_dir=folder / "files")
    long_ago = datetime.now(UTC) - timedelta(days=60)
    with engine.begin() as conn:
        cid = parties.add_contact(conn, scenario.org_id, DEFERRED, actor="ops", at=long_ago)
        link = parties.link_contact(conn, scenario.org_id, cid, scenario.account_ids["A0002"],
                                    "billing", actor="ops", at=long_ago)
        parties.set_link_status(conn, scenario.org_id, link, "verified", actor="ops",
                                method="email_token", at=long_ago)
    assert plan_run(engine, scenario.org_id, scenario.run_id, actor="planner").verdict == \
        "proceed"
    engine.dispose()
    return folder / "db.sqlite", scenario.run_id


def _cli(db: Path, port: int, *args: str, kill_at: str | None = None,
         as_json: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALBILL_DKIM": "off", "SEALBILL_SMTP_PORT": str(port),
           "SEALBILL_SMTP_TIMEOUT": "2",
           "PYTHONPATH": str(ROOT / "src")}
    env.pop("SEALBILL_DKIM_KEY", None)
    env.pop("SEALBILL_TEST_KILL_AT", None)
    if kill_at:
        env["SEALBILL_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--org", "acme-cloud",
                           "--db", f"sqlite:///{db}", *(["--json"] if as_json else [])],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _unrecorded_at_kill(db: Path, taken: set[tuple[str | None, str]]
                        ) -> set[tuple[str | None, str]]:
    """The pairs SMTP had taken whose message the database still had in ``sending``, to a
    recipient not settled (delivered or bounced) by an outcome it had recorded."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        rows = {str(m): (str(s), o or {}) for m, s, o in conn.execute(sa.select(
            outbox.c.message_id, outbox.c.status, outbox.c.recipient_outcomes))}
    engine.dispose()
    return {(m, r) for m, r in taken if rows[str(m)][0] == "sending"
            and (rows[str(m)][1].get(rcpts.key(r)) or {}).get("state") not in rcpts.SETTLED}


@pytest.mark.parametrize("batch", [1, 100])
@pytest.mark.parametrize("phase", ["claimed", "smtp_done"])
def test_sigkill_of_the_sender_under_refusals_then_rerun_completes(
        phase: str, batch: int, template: tuple[Path, int], tmp_path: Path,
        smtp_server: SmtpCapture) -> None:
    source, run_id = template
    db = tmp_path / "db.sqlite"
    shutil.copyfile(source, db)
    smtp_server.reject_rcpt[BOUNCING] = "550 5.1.1 <billing4@client4.example>: user unknown"
    smtp_server.rcpt_script[DEFERRED] = deque(["450 4.2.1 mailbox busy"] * 2)
    n = random.randint(1, ACCOUNTS)  # a random message (named in a failure message)
    send = ("run", "send", str(run_id), "--backoff", "0.05", "--batch", str(batch))

    killed = _cli(db, smtp_server.port, *send, kill_at=f"{n}:{phase}")
    assert killed.returncode == -9, (n, killed.stderr)
    before_restart = smtp_server.accepted_pairs()
    unrecorded = _unrecorded_at_kill(db, set(before_restart))
    rerun = _cli(db, smtp_server.port, *send)
    assert rerun.returncode == 5, rerun.stdout + rerun.stderr  # one address bounced
    assert json.loads(rerun.stdout)["status"] == "incomplete"

    pairs = smtp_server.accepted_pairs()
    # exactly what SMTP had taken and the database had not recorded at the kill: at most the
    # sender's batch; with --batch 1 the message in flight, and only if SMTP had taken it
    assert {p for p, count in pairs.items() if count > 1} == unrecorded, (n, batch)
    twice = {message for message, _ in unrecorded}
    bound = n if batch > 1 else 1 if phase == "smtp_done" else 0  # messages given before it
    assert len(twice) <= bound, (n, twice)
    assert all(before_restart[p] >= 1 for p, c in pairs.items() if c > 1)
    received = {rcpt for _, rcpt in pairs}
    entitled = {f"billing{i}@client{i}.example" for i in range(1, ACCOUNTS + 1)} | {DEFERRED}
    assert received - {"factures@acme-cloud.example", "archive@acme-cloud.example"} \
        == entitled - {BOUNCING}
    assert all(r.endswith(".example") for r in received)

    status = _cli(db, smtp_server.port, "run", "status", str(run_id))
    assert status.returncode == 5
    [missing] = json.loads(status.stdout)["undelivered"]
    assert missing["recipient"] == BOUNCING and missing["recipient_state"] == "bounced"
    assert "550 5.1.1" in missing["reply"] and missing["invoice"] and missing["account"]
    assert "--replan" in missing["next_step"]
    if phase == "smtp_done":  # the same, as a person reads it
        text = _cli(db, smtp_server.port, "run", "status", str(run_id), as_json=False).stdout
        assert f"{missing['invoice']} account {missing['account']} -> {BOUNCING}: bounced" in text
        assert "550 5.1.1" in text and "next: " in text and "--replan" in text
    if phase == "claimed":  # the operator tries `run retry`: a bounced-only message is not resent
        retry = _cli(db, smtp_server.port, "run", "retry", str(run_id), "--reason", "relay ok")
        assert retry.returncode == 0, retry.stdout + retry.stderr
        out = json.loads(retry.stdout)
        assert out["queued"] == [] and out["skipped"][0]["invoice"] == missing["invoice"]
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        assert ledger.verify(conn, 1).ok
    engine.dispose()
