"""``sealbill worker`` (and ``sealbill serve``) processes for the scale tests, on a throwaway
PostgreSQL, with the aiosmtpd capture server; every process stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.sink import free_port
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture


class Workers:
    """``sealbill worker`` processes with their own environment; all stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []  # type: list[subprocess.Popen[bytes]]

    def start(self, name: str, concurrency: int = 2, **extra: str) -> subprocess.Popen[bytes]:
        return self._spawn(name, ["worker", "--concurrency", str(concurrency), "--name", name],
                           extra)

    def serve(self) -> str:
        """``sealbill serve`` on a free port; returns its base URL once it answers."""
        port = free_port()
        proc = self._spawn("api", ["serve", "--port", str(port), "--rate", "1000",
                                   "--burst", "1000"], {})
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"{base}/openapi.json", timeout=2)
                return base
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError(f"the API did not start: {(self.logs / 'api.log').read_text()}")

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]
               ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "sealbill", *args],
                                env={**self.env, **extra}, stdout=log,
                                stderr=subprocess.STDOUT)
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
                proc.wait()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float,
                 state: Callable[[], object] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                         for p in sorted(self.logs.glob("*.log")))
        raise AssertionError(f"timed out waiting for {what}: {state()}\n{logs}")


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


def verified_at(engine: Engine, run_id: int) -> float | None:
    """When the run's ledger check succeeded (epoch seconds, the queue's event), or None."""
    with engine.begin() as conn:
        found = conn.execute(sa.text(
            "SELECT max(extract(epoch FROM e.at)) FROM procrastinate_jobs j "
            "JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'succeeded' "
            "WHERE j.task_name = 'sealbill.verify' AND (j.args->>'run_id')::bigint = :r"),
            {"r": run_id}).scalar()
    return None if found is None else float(found)
