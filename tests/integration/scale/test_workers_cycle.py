"""A billing cycle shared by worker processes (``sealbill worker``) on PostgreSQL, with workers
killed by SIGKILL mid-render and mid-send: nothing lost, nothing numbered or recorded twice.

Real parts only: a throwaway PostgreSQL, the aiosmtpd server, the ``sealbill worker`` command
in separate processes, the production pipeline behind each job. The ground truth for who may
receive an invoice is the scenario (reference A000i <-> billing{i}@client{i}.example).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import distributed
from sealbill.app.context import Actor
from sealbill.store import ledger
from sealbill.store.schema import delivery_ledger, invoices, outbox
from tests.support.scenario import seed_organization
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

ACCOUNTS = 80
CONCURRENCY = 2  # jobs at once per worker process
ROOT = Actor("local:test", "admin")


class Workers:
    """``sealbill worker`` processes with their own environment; all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []  # type: list[subprocess.Popen[bytes]]

    def start(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealbill", "worker", "--concurrency", str(CONCURRENCY),
             "--name", name],
            env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(pg_url: str, smtp_server: SmtpCapture,  # noqa: F811
            tmp_path: Path) -> Iterator[Workers]:
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "SEALBILL_DATABASE_URL": pg_url, "SEALBILL_FILES_DIR": str(tmp_path / "documents"),
           "SEALBILL_SMTP_HOST": smtp_server.host, "SEALBILL_SMTP_PORT": str(smtp_server.port),
           "SEALBILL_SMTP_TIMEOUT": "5", "SEALBILL_RENDER_CHUNK": "8",
           "SEALBILL_SEND_SLICES": "4", "SEALBILL_STALLED_SECONDS": "3", "SEALBILL_DKIM": "off",
           "SEALBILL_LOG_LEVEL": "info"}
    env.pop("SEALBILL_TEST_KILL_AT", None)
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def wait_for(what: str, check: Callable[[], bool], timeout: float, workers: Workers,
             state: Callable[[], object] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                     for p in sorted(workers.logs.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}: {state()}\n{logs}")


def run_status(engine: Engine, run_id: int) -> str:
    with engine.begin() as conn:
        return str(conn.execute(sa.text("SELECT status FROM billing_runs WHERE id = :r"),
                                {"r": run_id}).scalar_one())


def test_a_cycle_shared_by_workers_survives_two_killed_workers(
        pg_engine: Engine, workers: Workers, smtp_server: SmtpCapture,  # noqa: F811
        tmp_path: Path) -> None:
    org_id, _ = seed_organization(pg_engine, accounts=ACCOUNTS, files_dir=tmp_path / "seed")
    subprocess.run([sys.executable, "-m", "sealbill", "worker", "init-schema"], check=True,
                   env=workers.env)
    renderer = workers.start("w1", SEALBILL_TEST_KILL_RENDER="2")
    sender = workers.start("w2", SEALBILL_TEST_KILL_AT="4:smtp_done")
    workers.start("w3")
    started = distributed.start(pg_engine, ROOT, org_id, "2026-10")
    assert started["enqueued"] == ["sealbill.rate"]
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

    wait_for("the renderer's SIGKILL", lambda: renderer.poll() is not None, 90, workers, state)
    assert renderer.returncode == -signal.SIGKILL
    wait_for("the sender's SIGKILL", lambda: sender.poll() is not None, 90, workers, state)
    assert sender.returncode == -signal.SIGKILL
    workers.start("w4")
    wait_for("the run to be verified", lambda: run_status(pg_engine, run_id) == "sent"
             and distributed.progress_of(pg_engine, org_id, run_id)["jobs"].get(
                 "succeeded", 0) > 0 and _verified(pg_engine, run_id), 120, workers, state)

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
    assert len(numbers) == ACCOUNTS and len(set(numbers)) == ACCOUNTS  # 0 lost, 0 twice
    assert statuses == Counter({"sent": ACCOUNTS})
    assert len(ledger_rows) == ACCOUNTS and max(ledger_rows.values()) == 1  # 0 twice
    assert chain.ok
    by_rcpt = smtp_server.accepted_by_recipient()
    for number, ref in refs.items():
        i = int(ref[1:])
        assert by_rcpt.get(f"billing{i}@client{i}.example"), f"{number} not delivered"
    # Twice only a message in flight at the kill (one per sender the killed worker ran), with
    # the same Message-ID and the same recipients both times.
    seen = Counter(m.message_id for m in smtp_server.received)
    twice = [m for m, c in seen.items() if c > 1]
    assert len(twice) <= CONCURRENCY and max(seen.values()) <= 2
    for message_id in twice:
        copies = [m for m in smtp_server.received if m.message_id == message_id]
        assert len({tuple(sorted(m.rcpt_tos)) for m in copies}) == 1


def _verified(engine: Engine, run_id: int) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'sealbill.verify' "
            "AND status = 'succeeded' AND (args->>'run_id')::bigint = :r"),
            {"r": run_id}).scalar())
