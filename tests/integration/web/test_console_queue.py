"""The console shows a run in the workers' hands (PostgreSQL + Procrastinate) stage by stage:
enqueued with no worker, every stage waits; a real ``sealbill worker`` process then runs the
cycle and the run page, never reloaded, follows it through htmx polling to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect
from sqlalchemy.engine import Engine

from sealbill.app import distributed, operators, sessions
from sealbill.app.context import Actor, local_actor
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.web import WebConfig, create_web_app
from sealbill.workers.run import init_schema
from tests.integration.web.conftest import axe_violations
from tests.integration.web.site import PASSWORD, SECRET, Operator, free_port
from tests.support.scenario import seed_organization
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

SLUG, PERIOD = "acme-cloud", "2026-10"
SRC = Path(__file__).resolve().parents[3] / "src"


@dataclass
class QueueSite:
    url: str
    engine: Engine
    db_url: str
    org_id: int
    alice: Operator
    files: Path


@pytest.fixture
def queue_site(pg_engine: Engine, pg_url: str, tmp_path: Path,
               smtp_server: SmtpCapture) -> Iterator[QueueSite]:  # noqa: F811
    init_schema(pg_url)
    org_id, _ = seed_organization(pg_engine, accounts=2, files_dir=tmp_path / "files")
    address = "alice@acme-cloud.example"
    made = operators.create_operator(pg_engine, local_actor(), address, "Alice", PASSWORD)
    sessions.grant(pg_engine, local_actor(), org_id, address, "admin")
    who = operators.login(pg_engine, address, PASSWORD, Operator(
        address, made["totp_secret"], "admin", 0).code())
    alice = Operator(address, made["totp_secret"], "admin", who["operator_id"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    def transport() -> SmtpSender:
        return SmtpSender(SmtpConfig(host=smtp_server.host, port=smtp_server.port, timeout=2.0))

    app = create_web_app(pg_engine, WebConfig(public_url=url, secret_key=SECRET,
                                              transport=transport, secure_cookies=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield QueueSite(url, pg_engine, pg_url, org_id, alice, tmp_path / "files")
    finally:
        server.should_exit = True


def _sign_in(page: Page, site: QueueSite) -> None:
    page.goto(f"{site.url}/console/sign-in")
    page.get_by_label("Organization").fill(SLUG)
    page.get_by_label("E-mail").fill(site.alice.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator code").fill(site.alice.code())
    page.get_by_role("button", name="Sign in").click()


def _worker(site: QueueSite, smtp: SmtpCapture, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "SEALBILL_DATABASE_URL": site.db_url, "SEALBILL_FILES_DIR": str(site.files),
           "SEALBILL_SMTP_HOST": smtp.host, "SEALBILL_SMTP_PORT": str(smtp.port),
           "SEALBILL_SMTP_TIMEOUT": "5", "SEALBILL_DKIM": "off"}
    return subprocess.Popen([sys.executable, "-m", "sealbill", "worker", "--name", "w1"],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _row(page: Page, stage: str, cell: str) -> object:
    return page.locator(f"#queue-progress tr[data-stage='{stage}'] td.{cell}")


def test_a_queued_runs_stages_wait_then_follow_a_worker_without_reloading(
        queue_site: QueueSite, smtp_server: SmtpCapture, page: Page,  # noqa: F811
        tmp_path: Path) -> None:
    site = queue_site
    admin = Actor(f"operator:{site.alice.email}", "admin", site.org_id, site.alice.id,
                  channel="web")
    run = distributed.start(site.engine, admin, site.org_id, PERIOD)["run_id"]
    _sign_in(page, site)

    page.goto(f"{site.url}/console/runs")
    expect(page.get_by_role("row", name=PERIOD)).to_contain_text("queue jobs done: 0 / 1")
    page.goto(f"{site.url}/console/runs/{run}")
    expect(_row(page, "rating", "state")).to_have_text("waiting")
    expect(_row(page, "rating", "total")).to_have_text("1")
    for stage in ("finalization", "rendering", "plan", "canary", "sending", "verification"):
        expect(_row(page, stage, "state")).to_have_text("waiting")
        expect(_row(page, stage, "total")).to_have_text("0")
    expect(page.locator("#queue-progress")).to_contain_text(
        "Workers running this run's jobs: none now")
    assert axe_violations(page) == []

    worker = _worker(site, smtp_server, tmp_path / "worker.log")
    try:
        # No reload from here: the progress fragment is replaced by htmx every two seconds.
        expect(_row(page, "verification", "state")).to_have_text("done", timeout=120_000)
    except AssertionError:
        raise AssertionError((tmp_path / "worker.log").read_text()[-4000:]) from None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    for stage in ("rating", "finalization", "rendering", "plan", "canary", "sending"):
        expect(_row(page, stage, "state")).to_have_text("done")
        expect(_row(page, stage, "failed")).to_have_text("0")
    expect(_row(page, "rating", "done")).to_have_text("1")
    expect(page.locator("#progress .status")).to_have_text("sent")
    assert axe_violations(page) == []
