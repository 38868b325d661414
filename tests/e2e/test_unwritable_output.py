"""An output folder the operator cannot write: one line of error, exit 2, nothing written.

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

from sealbill.pipeline import incident as incidents
from sealbill.pipeline.organizations import create_org
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.e2e.test_cli_billing import ORG

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
    """A data folder that ``nobody`` owns (database, key), with ``locked/`` owned by root."""
    why = _why_not()
    if why:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="sealbill-nobody-"))
    try:
        base.chmod(0o755)
        engine = create_engine(f"sqlite:///{base / 'sealbill.sqlite'}")
        upgrade(engine)
        with engine.begin() as conn:
            org_id = create_org(conn, ORG)
        incidents.open_incident(engine, org_id, title="lost laptop",
                                aware_at=datetime.now(UTC) - timedelta(hours=1),
                                scope=incidents.Scope(), actor="test")
        engine.dispose()
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


@pytest.mark.parametrize("target", ["locked", "locked/drafts"])
def test_an_unwritable_output_folder_is_one_line_exit_2_and_nothing_written(
        folder: Path, target: str) -> None:
    before = _dump(folder / "sealbill.sqlite")
    done = _as_nobody(folder, "incident", "drafts", "1", "--org", "acme", "--no-pdf",
                      "--out", str(folder / target))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1 and str(folder / "locked") in lines[0], lines  # the path named
    assert "permission denied" in lines[0]
    assert list((folder / "locked").iterdir()) == []
    assert _dump(folder / "sealbill.sqlite") == before
