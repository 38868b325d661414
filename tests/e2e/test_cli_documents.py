"""``sealbill documents render`` as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.support.scenario import build_scenario


def sealbill(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db],
                          capture_output=True, text=True, timeout=300)


def test_renders_a_run_once_and_never_again(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    build_scenario(engine, accounts=3, files_dir=tmp_path / "work", render=False)
    engine.dispose()
    out = tmp_path / "files"
    first = sealbill(db, "documents", "render", "2026-10", "--org", "acme-cloud", "--out",
                     str(out), "--workers", "1", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["rendered"] == 3
    pdf = out / "acme-cloud" / "F-000002.pdf"
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "F-000002" in text and "Client 2 SARL" in text
    again = sealbill(db, "documents", "render", "F-000002", "--org", "acme-cloud", "--out",
                     str(out), "--json")
    assert json.loads(again.stdout)["rendered"] == 0
    missing = sealbill(db, "documents", "render", "F-999999", "--org", "acme-cloud")
    assert missing.returncode == 1 and "F-999999" in missing.stderr
