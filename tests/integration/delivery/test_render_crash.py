"""SIGKILL of the rendering command (the parent, mid-run: files already in the store, their rows
not yet written), then the documented step — run it again — and the cycle completes: every
invoice rendered once with digests matching its files, then planned and delivered once to its
recipient. (Whether the killed parent's workers exit by themselves is another test's subject;
this one clears its process group afterwards.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.billing.render import KILL_ENV
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.pipeline.delivery.send import send_run
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import documents
from tests.integration.delivery.conftest import FAST
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture

ROOT = Path(__file__).resolve().parents[3]
ACCOUNTS = 6


def _render(db: Path, out: Path, run_id: int, kill: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop(KILL_ENV, None)
    if kill:  # SIGKILL of the parent once the files are stored, before their rows
        env[KILL_ENV] = "after_files"
    return subprocess.Popen(
        [sys.executable, "-m", "sealbill", "documents", "render", str(run_id), "--org",
         "acme-cloud", "--db", f"sqlite:///{db}", "--out", str(out), "--workers", "2",
         "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def test_sigkill_of_the_renderer_mid_run_then_rerun_completes_the_cycle(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:
    db, out = tmp_path / "db.sqlite", tmp_path / "files"
    engine = create_engine(f"sqlite:///{db}")
    upgrade(engine)
    scenario = build_scenario(engine, accounts=ACCOUNTS, files_dir=tmp_path / "seed",
                              render=False)
    first = _render(db, out, scenario.run_id, kill=True)
    try:
        assert first.wait(timeout=120) == -signal.SIGKILL
        assert list(out.rglob("*.pdf"))  # the files were stored
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # whatever workers are left
    with engine.begin() as conn:
        rows_after_kill = conn.execute(
            sa.select(sa.func.count()).select_from(documents)).scalar()
    assert rows_after_kill == 0  # killed between the files and their rows

    again = _render(db, out, scenario.run_id)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    with engine.begin() as conn:
        rows = conn.execute(sa.select(documents.c.invoice_id, documents.c.kind,
                                      documents.c.path, documents.c.sha256)).all()
    assert len({r.invoice_id for r in rows}) == ACCOUNTS
    assert all(hashlib.sha256(Path(r.path).read_bytes()).hexdigest() == r.sha256 for r in rows)

    assert plan_run(engine, scenario.org_id, scenario.run_id, actor="planner").verdict == \
        "proceed"
    report = send_run(engine, scenario.org_id, scenario.run_id,
                      transport=SmtpSender(SmtpConfig(host=smtp_server.host,
                                                      port=smtp_server.port, timeout=2)),
                      signer=None, options=FAST)
    assert report.status == "sent"
    assert [n for n in smtp_server.accepted_pairs().values() if n > 1] == []
    assert len({m.message_id for m in smtp_server.accepted}) == ACCOUNTS
