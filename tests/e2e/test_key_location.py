"""The sealing key follows the database, not the folder a command is run from: a command run
elsewhere finds the key the first one made, and never makes a second one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.catalog_fixture import ORG

ROOT = Path(__file__).resolve().parents[2]
_LOCATIONS = ("SEALBILL_SECRET_KEY", "SEALBILL_KEYRING_DIR", "SEALBILL_FILES_DIR",
              "SEALBILL_DATA_DIR", "SEALBILL_DATABASE_URL")


def _sealbill(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _LOCATIONS}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run([sys.executable, "-m", "sealbill", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_command_run_from_another_folder_finds_the_key_beside_the_database(
        tmp_path: Path) -> None:
    data, first, second = tmp_path / "data", tmp_path / "here", tmp_path / "elsewhere"
    for folder in (data, first, second):
        folder.mkdir()
    db = f"sqlite:///{data / 'sealbill.sqlite'}"
    (first / "org.json").write_text(json.dumps(ORG))

    created = _sealbill(first, "organizations", "create", "-f", "org.json", "--db", db)
    assert created.returncode == 0, created.stderr
    made = sorted(p.name for p in (data / "files").iterdir())
    assert made and not (first / "files").exists()  # beside the database, not in the cwd

    shown = _sealbill(second, "sealing-keys", "show", "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    checked = _sealbill(second, "contacts", "verify-seals", "--org", ORG["slug"], "--db", db,
                        "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not (second / "files").exists()  # no second key was made
    assert sorted(p.name for p in (data / "files").iterdir()) == made
