"""The keyring outside the database: where the key comes from, rotation, a missing key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill import keys
from sealbill.domain.seals import Check, key_id
from sealbill.store.parties import records as parties
from sealbill.store.parties import seals
from sealbill.store.schema import contacts
from tests.support.scenario import build_scenario


def test_the_environment_key_is_used_when_there_is_no_keyring_file(tmp_path: Path) -> None:
    found = keys.load(tmp_path)
    assert found is not None
    assert found.keys.active == key_id(b"test-sealing-key-" + b"0" * 32)


def test_without_environment_the_secret_key_file_is_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEALBILL_SECRET_KEY")
    assert keys.load(tmp_path) is None
    created = keys.create_first_key(tmp_path)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert keys.load(tmp_path) == created


def test_rotation_adds_an_active_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    before = keys.load(tmp_path)
    assert before is not None
    rotated, previous = keys.rotate(tmp_path)
    again, second = keys.rotate(tmp_path)
    assert previous == before.keys.active and second == rotated.keys.active
    assert set(again.keys.by_id) == {previous, second, again.keys.active}
    assert len(set(again.keys.by_id)) == 3
    path = tmp_path / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["active"] == again.keys.active


def test_a_missing_key_is_never_replaced_while_sealed_rows_exist(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_scenario(sqlite_engine, accounts=1, files_dir=tmp_path / "files", render=False)
    monkeypatch.delenv("SEALBILL_SECRET_KEY")
    empty = tmp_path / "elsewhere"
    keys._BOUND.pop(sqlite_engine, None)
    with sqlite_engine.begin() as conn, pytest.raises(keys.KeyMissing, match="sealed rows"):
        keys.for_connection(conn, empty)
    assert not (empty / "secret.key").exists()


def test_resealing_after_rotation_never_launders_a_tampered_row(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(sqlite_engine, accounts=2, files_dir=tmp_path / "files", render=False)
    directory = tmp_path / "keyring"
    first = keys.load(directory)
    assert first is not None
    keys.use(sqlite_engine, first)
    tampered, honest = sorted(s.contact_ids.values())
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(contacts).where(contacts.c.id == tampered)
                     .values(email="attacker@evil-corp.com"))
    rotated, _ = keys.rotate(directory)
    keys.use(sqlite_engine, rotated)
    with sqlite_engine.begin() as conn:
        counts = seals.reseal_all(conn)
        rows = {r.id: r._mapping for r in conn.execute(sa.select(contacts))}
    assert counts["contact"] == {"resealed": 1, "already_active": 0, "not_valid": 1}
    assert rows[honest]["seal_key_id"] == rotated.keys.active
    assert seals.check_row(rotated.keys, "contact", rows[honest]) is Check.VALID
    assert seals.check_row(rotated.keys, "contact", rows[tampered]) is Check.MISMATCH
    assert rows[tampered]["seal_key_id"] == first.keys.active
    with sqlite_engine.begin() as conn:  # and a write after rotation seals with the new key
        new = parties.add_contact(conn, s.org_id, "new@client.example", actor="t")
        row = conn.execute(sa.select(contacts).where(contacts.c.id == new)).one()._mapping
    assert row["seal_key_id"] == rotated.keys.active
