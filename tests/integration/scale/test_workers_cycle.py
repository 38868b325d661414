"""A billing cycle shared by worker processes (``sealbill worker``) on PostgreSQL, started
through the API (``sealbill serve``, ``POST /v1/runs/enqueue``), with one worker killed by
SIGKILL mid-render and another mid-send, and a fourth started later: nothing lost, nothing
numbered or recorded twice. 80 accounts in ``make test``; the issue's 2,000 in
``make test-deep``.

Real parts only: a throwaway PostgreSQL, the aiosmtpd server, the ``sealbill worker`` and
``sealbill serve`` commands in separate processes, the production pipeline behind each job. The
ground truth for who may receive an invoice is the scenario (reference A000i <->
billing{i}@client{i}.example).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import distributed, operators
from sealbill.app.context import local_actor
from sealbill.store.delivery import ledger
from sealbill.store.schema import delivery_ledger, invoices, outbox
from tests.integration.scale.conftest import Workers
from tests.support.scenario import seed_organization
from tests.support.smtp import SmtpCapture

CONCURRENCY = 2  # jobs at once per worker process

#: accounts, the renderer's n-th render job and the sender's n-th message at which they
#: are killed, render chunk, seconds allowed to finish
SMALL = (80, "2", "4:smtp_done", "8", 180)
DEEP = (2000, "4", "150:smtp_done", "50", 1500)


def run_status(engine: Engine, run_id: int) -> str:
    with engine.begin() as conn:
        return str(conn.execute(sa.text("SELECT status FROM billing_runs WHERE id = :r"),
                                {"r": run_id}).scalar_one())


def _api_key(engine: Engine, org_id: int) -> str:
    root = local_actor()
    operators.create_operator(engine, root, "ops@acme.example", "ops", "correct horse battery")
    return str(operators.create_key(engine, root, org_id, "ops@acme.example", "admin")["key"])


@pytest.mark.parametrize("size", [
    pytest.param(SMALL, id="80-accounts"),
    pytest.param(DEEP, id="2000-accounts", marks=pytest.mark.deep),
])
def test_a_cycle_shared_by_workers_survives_two_killed_workers(
        size: tuple[int, str, str, str, float], pg_engine: Engine, workers: Workers,
        smtp_server: SmtpCapture, tmp_path: Path) -> None:
    accounts, render_kill, send_kill, render_chunk, timeout = size
    began = time.monotonic()
    workers.env["SEALBILL_RENDER_CHUNK"] = render_chunk
    org_id, _ = seed_organization(pg_engine, accounts=accounts, files_dir=tmp_path / "seed")
    key = _api_key(pg_engine, org_id)
    subprocess.run([sys.executable, "-m", "sealbill", "worker", "init-schema"], check=True,
                   env=workers.env)
    api = workers.serve()
    renderer = workers.start("w1", CONCURRENCY, SEALBILL_TEST_KILL_RENDER=render_kill)
    sender = workers.start("w2", CONCURRENCY, SEALBILL_TEST_KILL_AT=send_kill)
    workers.start("w3", CONCURRENCY)
    answer = httpx.post(f"{api}/v1/runs/enqueue", json={"period": "2026-10"}, timeout=60,
                        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "go"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["enqueued"][0] == "sealbill.rate"
    progress_url = api + answer.headers["location"]
    with pg_engine.begin() as conn:
        run_id = int(conn.execute(sa.text("SELECT id FROM billing_runs")).scalar_one())

    def state() -> object:
        with pg_engine.begin() as conn:
            jobs = conn.execute(sa.text(
                "SELECT task_name, status, count(*) FROM procrastinate_jobs "
                "GROUP BY 1, 2 ORDER BY 1, 2")).all()
            beats = conn.execute(sa.text(
                "SELECT id, last_heartbeat FROM procrastinate_workers")).all()
        return distributed.progress_of(pg_engine, org_id, run_id), jobs, beats

    workers.wait_for("the renderer's SIGKILL", lambda: renderer.poll() is not None, timeout,
                     state)
    assert renderer.returncode == -signal.SIGKILL
    workers.wait_for("the sender's SIGKILL", lambda: sender.poll() is not None, timeout,
                     state)
    assert sender.returncode == -signal.SIGKILL
    workers.start("w4", CONCURRENCY)
    workers.wait_for("the run to be verified", lambda: run_status(pg_engine, run_id) == "sent"
                     and _verified(pg_engine, run_id), timeout, state)
    seen = httpx.get(progress_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert seen.json()["status"] == "sent" and seen.json()["outbox"] == {"sent": accounts}
    with pg_engine.begin() as conn:  # the jobs the killed workers held were run again
        requeued = dict(conn.execute(sa.text(
            "SELECT task_name, count(*) FROM procrastinate_jobs WHERE attempts > 0 "
            "GROUP BY 1")).all())
    assert requeued.get("sealbill.render") and (
        requeued.get("sealbill.send") or requeued.get("sealbill.canary")), requeued
    print(f"\n{accounts} accounts: {time.monotonic() - began:.0f} s")

    with pg_engine.begin() as conn:
        numbers = [n for n in conn.execute(sa.select(invoices.c.number).where(
            invoices.c.run_id == run_id)).scalars()]
        refs = {str(n): str(r) for n, r in conn.execute(sa.select(
            invoices.c.number, invoices.c.account_reference).where(invoices.c.run_id == run_id))}
        statuses = Counter(conn.execute(sa.select(outbox.c.status).where(
            outbox.c.run_id == run_id)).scalars())
        ledger_rows = Counter(conn.execute(sa.select(delivery_ledger.c.invoice_id).where(
            delivery_ledger.c.run_id == run_id)).scalars())
        chain = ledger.verify(conn, org_id)
    assert len(numbers) == accounts and len(set(numbers)) == accounts  # 0 lost, 0 twice
    assert statuses == Counter({"sent": accounts})
    assert len(ledger_rows) == accounts and max(ledger_rows.values()) == 1  # 0 twice
    assert chain.ok
    by_rcpt = smtp_server.accepted_by_recipient()
    with pg_engine.begin() as conn:  # the organization's own archive copy is entitled too
        archive = conn.execute(sa.text("SELECT archive_email FROM organizations")).scalar()
    entitled = {f"billing{int(ref[1:])}@client{int(ref[1:])}.example" for ref in refs.values()}
    entitled |= {archive} if archive else set()
    for number, ref in refs.items():
        i = int(ref[1:])
        assert by_rcpt.get(f"billing{i}@client{i}.example"), f"{number} not delivered"
    assert smtp_server.all_recipients() <= entitled  # nobody else
    # Twice only messages of a batch in flight at the kill (per sender the killed worker ran,
    # those SMTP had taken since its batch's outcomes were last written: at most the n of
    # its n-th message each), with the same Message-ID and the same recipients both times.
    seen_ids = Counter(m.message_id for m in smtp_server.received)
    assert len(seen_ids) == accounts
    twice = [m for m, c in seen_ids.items() if c > 1]
    assert len(twice) <= CONCURRENCY * int(send_kill.split(":")[0])
    assert max(seen_ids.values()) <= 2
    for message_id in twice:
        copies = [m for m in smtp_server.received if m.message_id == message_id]
        assert len({tuple(sorted(m.rcpt_tos)) for m in copies}) == 1


def _verified(engine: Engine, run_id: int) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'sealbill.verify' "
            "AND status = 'succeeded' AND (args->>'run_id')::bigint = :r"),
            {"r": run_id}).scalar())
