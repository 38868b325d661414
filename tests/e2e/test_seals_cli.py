"""`sealbill sealing-keys show|rotate` and `sealbill contacts verify-log|verify-seals` as an
operator runs them, and what a missing key does: a clear error, never a fresh key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sealbill import keys
from sealbill.store.db import create_engine
from sealbill.store.schema import contact_events, contacts
from tests.support.scenario import build_scenario


def sealbill(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, check=False)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_rotate_then_verify_log_then_a_cut_history_and_a_missing_key(
        sqlite_url: str, tmp_path: Path) -> None:
    engine = create_engine(sqlite_url)
    ring = str(tmp_path / "ring")
    os.makedirs(ring)
    keyring = keys.load(Path(ring))  # this installation's keyring directory: the CLI's too
    assert keyring is not None
    keys.use(engine, keyring)
    build_scenario(engine, accounts=2, files_dir=tmp_path / "files", render=False)

    shown = sealbill("sealing-keys", "show", "--keyring-dir", ring, "--json")
    assert shown.returncode == 0, shown.stderr
    before = as_json(shown)["active"]

    rotated = sealbill("sealing-keys", "rotate", "--db", sqlite_url, "--keyring-dir", ring,
                       "--json")
    assert rotated.returncode == 0, rotated.stderr
    out = as_json(rotated)
    assert out["previous"] == before and out["active"] != before
    assert out["resealed"]["contact"] == {"resealed": 2, "already_active": 0, "not_valid": 0}
    with engine.begin() as conn:
        assert set(conn.execute(sa.select(contacts.c.seal_key_id)).scalars()) == {out["active"]}

    intact = sealbill("contacts", "verify-log", "--org", "acme-cloud", "--db", sqlite_url,
                      "--keyring-dir", ring, "--json")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert as_json(intact)["ok"] is True and as_json(intact)["events"] > 0

    clean = sealbill("contacts", "verify-seals", "--org", "acme-cloud", "--db", sqlite_url,
                     "--keyring-dir", ring, "--json")
    assert clean.returncode == 0 and as_json(clean)["problems"] == [], clean.stdout
    with engine.begin() as conn:
        victim = conn.execute(sa.select(sa.func.min(contacts.c.id))).scalar_one()
        conn.execute(sa.update(contacts).where(contacts.c.id == victim)
                     .values(email="attacker@evil-corp.com"))
    tampered = sealbill("contacts", "verify-seals", "--org", "acme-cloud", "--db", sqlite_url,
                        "--keyring-dir", ring, "--json")
    assert tampered.returncode == 1
    assert as_json(tampered)["problems"] == [
        {"kind": "contact", "id": victim, "seal": "mismatch", "key_id": out["active"],
         "email": "attacker@evil-corp.com"}]

    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(contact_events.c.seq))).scalar_one()
        conn.execute(sa.delete(contact_events).where(contact_events.c.seq == last))
    cut = sealbill("contacts", "verify-log", "--org", "acme-cloud", "--db", sqlite_url,
                   "--keyring-dir", ring)
    assert cut.returncode == 1
    assert "truncated" in cut.stdout + cut.stderr

    nothing = str(tmp_path / "no-key-here")
    missing = sealbill("ledger", "verify", "--org", "acme-cloud", "--db", sqlite_url,
                       SEALBILL_SECRET_KEY="", SEALBILL_KEYRING_DIR=nothing)
    assert missing.returncode == 1
    assert "sealed rows but no sealing key" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr
    assert not os.path.exists(os.path.join(nothing, "secret.key"))
