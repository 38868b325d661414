"""The keyring that seals entitlement facts, and where a database finds it.

Keys live **outside the database**, in the keyring directory (``SEALBILL_KEYRING_DIR``, else
the files directory of the database, ``SEALBILL_FILES_DIR`` / ``<data dir>/files``):

- ``keyring.json`` (mode 0600), written by ``sealbill sealing-keys rotate``: every key ever active
  (hex), and which one seals now. Old keys stay, so seals made before a rotation still verify;
- without it, the one secret sealbill always had: ``SEALBILL_SECRET_KEY``, else
  ``secret.key`` (the key of :func:`sealbill.pipeline.parties.verify.secret_key`);
- ``checkpoints/<database>.jsonl``: sealed heads of the hash chains (:mod:`sealbill.store.chain`).

How a write finds its keyring: the store's write functions take a ``Connection``; they ask
:func:`for_connection`, which returns the keyring bound to that connection's engine
(:func:`use`) or, the first time, the default one for the environment. We chose this over a
``sealer=`` parameter on every write function: about sixty call sites (CLI, import, demo,
verification, tests) would each have to pass it, and a caller that forgot — or a new entry
point such as the future API — would write an unsealed row. Here no write function can be
reached without a keyring, and a missing key is an error at the first write, not a silent
default.

Invariants:
- a missing key is never replaced by a fresh one while the database holds sealed rows
  (:class:`KeyMissing`): a new key would turn every seal invalid and every message refused;
- ``keyring.json`` is replaced atomically (write to a temporary file, ``os.replace``), mode
  0600 from creation.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill import settings
from sealbill.domain.seals import Keys, key_id

KEYRING_FILE = "keyring.json"
LEGACY_FILE = "secret.key"


class KeyMissing(RuntimeError):
    """No sealing key, while the database already holds sealed rows (or a keyring is broken)."""


@dataclass(frozen=True)
class Keyring:
    keys: Keys
    directory: Path

    def checkpoint_file(self, database: str) -> Path:
        return self.directory / "checkpoints" / f"{database}.jsonl"


def keyring_dir(explicit: str | Path | None = None, *, db_url: str | None = None) -> Path:
    """``explicit``, else ``SEALBILL_KEYRING_DIR``, else the files directory of the database
    ``db_url`` (or of the one the command named): the key is found from any folder."""
    return Path(explicit or os.environ.get("SEALBILL_KEYRING_DIR")
                or settings.files_dir(db_url=db_url))


def _legacy_secret(directory: Path) -> bytes | None:
    explicit = os.environ.get("SEALBILL_SECRET_KEY")
    if explicit:
        return explicit.encode()
    path = directory / LEGACY_FILE
    return path.read_text().strip().encode() if path.exists() else None


def load(directory: Path) -> Keyring | None:
    """The keyring of ``directory``, or ``None`` when there is no key at all."""
    by_id: dict[str, bytes] = {}
    active: str | None = None
    path = directory / KEYRING_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            for entry in data["keys"]:
                by_id[str(entry["id"])] = bytes.fromhex(entry["secret"])
            active = str(data["active"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyMissing(f"{path} is not a readable keyring: {exc}") from exc
        for kid, secret in by_id.items():
            if key_id(secret) != kid:
                raise KeyMissing(f"{path}: key {kid} does not match its id")
    legacy = _legacy_secret(directory)
    if legacy is not None:
        by_id.setdefault(key_id(legacy), legacy)
        active = active or key_id(legacy)
    if active is None:
        return None
    return Keyring(Keys(active, by_id), directory)


def create_first_key(directory: Path) -> Keyring:
    """A new ``secret.key`` (0600): only for a database with nothing sealed yet."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LEGACY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    found = load(directory)
    assert found is not None
    return found


def _write_keyring(directory: Path, by_id: dict[str, bytes], active: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"active": active, "keys": [
        {"id": kid, "secret": secret.hex()} for kid, secret in sorted(by_id.items())],
        "written_at": datetime.now(UTC).isoformat()}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keyring-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1)
        os.replace(tmp, directory / KEYRING_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rotate(directory: Path) -> tuple[Keyring, str]:
    """Add a fresh active key; every older key stays for verification. Returns the new
    keyring and the id of the key that was active before."""
    current = load(directory)
    if current is None:
        raise KeyMissing(f"no key to rotate in {directory} (and SEALBILL_SECRET_KEY unset)")
    fresh = secrets.token_bytes(32)
    by_id = {**current.keys.by_id, key_id(fresh): fresh}
    _write_keyring(directory, by_id, key_id(fresh))
    rotated = load(directory)
    assert rotated is not None
    return rotated, current.keys.active


# --- where a connection finds its keyring ------------------------------------------------------

_BOUND: weakref.WeakKeyDictionary[Engine, Keyring] = weakref.WeakKeyDictionary()


def use(engine: Engine, keyring: Keyring) -> Engine:
    """Bind ``keyring`` to ``engine``: every write through it seals with that keyring."""
    _BOUND[engine] = keyring
    return engine


def database_name(conn: Connection | Engine) -> str:
    """A stable file name for this database (its URL without password, hashed)."""
    url = conn.engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def sealed_rows_exist(conn: Connection) -> bool:
    from sealbill.store.schema import contacts, organizations

    return any(conn.execute(sa.select(sa.literal(1)).select_from(table)
                            .where(table.c.seal.is_not(None)).limit(1)).first()
               for table in (organizations, contacts))


def for_connection(conn: Connection, directory: Path | None = None) -> Keyring:
    """The keyring bound to ``conn``'s engine, or the environment's (bound from then on).

    With no key anywhere: a first key is created only if the database holds no sealed row;
    otherwise :class:`KeyMissing` — sealbill does not seal or send with a key it just made up.
    """
    engine = conn.engine
    bound = _BOUND.get(engine)
    if bound is not None:
        return bound
    where = directory or keyring_dir(
        db_url=engine.url.render_as_string(hide_password=False))
    found = load(where)
    if found is None:
        if sealed_rows_exist(conn):
            raise KeyMissing(
                f"this database holds sealed rows but no sealing key was found (looked for "
                f"SEALBILL_SECRET_KEY, {where / KEYRING_FILE}, {where / LEGACY_FILE}): restore "
                "the key (or set SEALBILL_KEYRING_DIR); a new key would invalidate every seal")
        found = create_first_key(where)
    _BOUND[engine] = found
    return found


def refresh(conn: Connection) -> Keyring:
    """Read the connection's keyring directory again (a ``sealing-keys rotate`` run by another
    process since this one loaded it): the new keyring is bound from then on. Old keys are
    never dropped by a rotation, so this only ever adds keys."""
    current = for_connection(conn)
    found = load(current.directory)
    if found is None:
        return current
    _BOUND[conn.engine] = found
    return found


def describe(keyring: Keyring) -> dict[str, Any]:
    return {"active": keyring.keys.active, "keys": sorted(keyring.keys.by_id),
            "directory": str(keyring.directory)}
