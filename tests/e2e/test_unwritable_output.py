"""An output folder the operator cannot write: one line of error, exit 2, nothing written —
for every command that writes a file (``incident drafts --out``, ``documents render --out``,
``invoices download --out``, ``import usage --rejects``, ``oss return --csv``).

The suite runs as root, for whom every folder is writable, so the CLI runs here as ``nobody``
(``runuser -u nobody --``) against a folder that belongs to root. The virtual environment's
interpreter lives under ``/root`` (not reachable by ``nobody``), so the command runs on the
system's Python of the same minor version with the environment's packages on ``PYTHONPATH``;
the test skips, saying why, where that is not possible.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.incident import actions as incidents
from sealbill.store.billing.catalog import add_metric
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.support.scenario import build_scenario

SRC = Path(__file__).resolve().parents[2] / "src"
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
SITE = next((Path(p) for p in sys.path if p.endswith("site-packages")), None)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run a command as nobody"
    if shutil.which("runuser") is None:
        return "runuser (util-linux) is not installed"
    if not SYSTEM_PYTHON.exists() or SITE is None:
        return f"no {SYSTEM_PYTHON} of this Python's version to run as nobody"
    return None


@pytest.fixture
def folder() -> Iterator[Path]:
    """A data folder that ``nobody`` owns (database, key, documents): organization ``acme``
    with a finalized run of two invoices (the first rendered), a metric, an incident, a usage
    file with one good and one bad row; ``locked/`` is owned by root."""
    why = _why_not()
    if why:
        pytest.fail(f"cannot run the CLI as nobody here: {why}")
    base = Path(tempfile.mkdtemp(prefix="sealbill-nobody-"))
    try:
        base.chmod(0o755)
        engine = create_engine(f"sqlite:///{base / 'sealbill.sqlite'}")
        upgrade(engine)
        scenario = build_scenario(engine, accounts=2, files_dir=base / "scratch", slug="acme",
                                  render=False)
        render_run(engine, scenario.org_id, None, base / "files", workers=1,
                   invoice_ids=scenario.invoice_ids[:1])
        with engine.begin() as conn:
            add_metric(conn, scenario.org_id, "api_calls", "API calls", "sum")
        incidents.open_incident(engine, scenario.org_id, title="lost laptop",
                                aware_at=datetime.now(UTC) - timedelta(hours=1),
                                scope=incidents.Scope(), actor="test")
        engine.dispose()
        (base / "usage.csv").write_text(
            "event_id,account_reference,metric_code,timestamp,value\n"
            "u1,A0001,api_calls,2026-10-01T10:00:00+02:00,3\n"
            "u2,A0001,no_such_metric,2026-10-01T10:00:00+02:00,3\n")
        (base / "locked").mkdir(mode=0o755)
        (base / "keyring").mkdir(mode=0o700)
        for path in [base, *base.rglob("*")]:
            if path.name != "locked":
                shutil.chown(path, "nobody", "nogroup")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_nobody(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "COLUMNS": "10000",
           "PYTHONPATH": f"{SRC}:{SITE}", "SEALBILL_DATA_DIR": str(folder),
           # the session's sealing key (tests/conftest.py), a keyring folder nobody owns
           "SEALBILL_SECRET_KEY": os.environ["SEALBILL_SECRET_KEY"],
           "SEALBILL_KEYRING_DIR": str(folder / "keyring")}
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", "-i",
         *[f"{k}={v}" for k, v in env.items()],
         str(SYSTEM_PYTHON), "-m", "sealbill", *args, "--db",
         f"sqlite:///{folder / 'sealbill.sqlite'}"],
        capture_output=True, text=True, timeout=120, cwd=folder)


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


# Every command that writes a file, with the path it is given ({out}: under locked/).
COMMANDS = {
    "incident drafts": ["incident", "drafts", "1", "--org", "acme", "--no-pdf",
                        "--out", "{out}"],
    "documents render": ["documents", "render", "2026-10", "--org", "acme", "--workers", "1",
                         "--out", "{out}"],
    "invoices download": ["invoices", "download", "F-000001", "--org", "acme",
                          "--out", "{out}/F-000001.pdf"],
    "import usage --rejects": ["import", "usage", "{base}/usage.csv", "--org", "acme",
                               "--rejects", "{out}/rejects.csv"],
    "oss return --csv": ["oss", "return", "--quarter", "2026-Q4", "--org", "acme",
                         "--csv", "{out}/oss.csv"],
}
TARGETS = [("incident drafts", "locked"), ("incident drafts", "locked/drafts"),
           ("documents render", "locked"), ("documents render", "locked/files"),
           ("invoices download", "locked"), ("import usage --rejects", "locked"),
           ("oss return --csv", "locked")]


@pytest.mark.parametrize(("command", "target"), TARGETS)
def test_an_unwritable_output_folder_is_one_line_exit_2_and_nothing_written(
        folder: Path, command: str, target: str) -> None:
    before = _dump(folder / "sealbill.sqlite")
    args = [a.format(out=folder / target, base=folder) for a in COMMANDS[command]]
    done = _as_nobody(folder, *args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1 and str(folder / "locked") in lines[0], lines  # the path named
    assert "permission denied" in lines[0]
    assert list((folder / "locked").iterdir()) == []
    assert _dump(folder / "sealbill.sqlite") == before
