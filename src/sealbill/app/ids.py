"""Opaque, prefixed public ids (``plan_…``, ``sub_…``, ``inv_…``) that never show a counter.

A public id is the AES-128 encryption of one 16-byte block (organization id, kind, row id and
three zero bytes), under a key kept in the database (``instance_secrets``), in lower base32.
Invariants: it reveals neither the row id nor how many rows exist; it decodes only for its
own organization and kind (anything else is :class:`~sealbill.app.errors.NotFound`), so an id
of another organization is indistinguishable from a made-up one; it needs no stored mapping.
Accounts keep their own random, rotatable ``public_id`` (``acc_…``, ``store/parties/records.py``).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import struct
import threading

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy.engine import Connection

from sealbill.app.errors import NotFound
from sealbill.store.schema import instance_secrets

KINDS: dict[str, tuple[int, str]] = {
    "organization": (1, "org"), "metric": (2, "met"), "plan": (3, "plan"),
    "subscription": (4, "sub"), "contact": (5, "con"), "usage": (6, "use"),
    "invoice": (7, "inv"), "run": (8, "run"), "api_key": (9, "key"), "audit": (10, "aud"),
    "link": (11, "lnk"), "webhook": (12, "whk"), "incident": (13, "inc"),
}
_LAYOUT = struct.Struct(">IBQ3s")
_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def _key(conn: Connection) -> bytes:
    url = conn.engine.url.render_as_string(hide_password=False)
    with _lock:
        if url in _cache:
            return _cache[url]
    row = conn.execute(sa.select(instance_secrets.c.value)
                       .where(instance_secrets.c.name == "public_ids")).scalar()
    if row is None:
        fresh = secrets.token_hex(16)
        # Two first users at once: the primary key keeps one; both read it back.
        with conn.begin_nested(), contextlib.suppress(sa.exc.IntegrityError):
            conn.execute(sa.insert(instance_secrets).values(name="public_ids", value=fresh))
        row = conn.execute(sa.select(instance_secrets.c.value)
                           .where(instance_secrets.c.name == "public_ids")).scalar_one()
    key = bytes.fromhex(str(row))
    with _lock:
        _cache[url] = key
    return key


def _cipher(conn: Connection) -> Cipher[modes.ECB]:
    # One block per id: ECB of a single block is the block cipher itself (a permutation).
    return Cipher(algorithms.AES(_key(conn)), modes.ECB())


def encode(conn: Connection, org_id: int, kind: str, row_id: int) -> str:
    code, prefix = KINDS[kind]
    block = _LAYOUT.pack(int(org_id), code, int(row_id), b"\0\0\0")
    enc = _cipher(conn).encryptor()
    data = enc.update(block) + enc.finalize()
    return f"{prefix}_" + base64.b32encode(data).decode().rstrip("=").lower()


def decode(conn: Connection, org_id: int, kind: str, public_id: str) -> int:
    """The row id behind ``public_id``, or :class:`NotFound` (wrong kind, organization, or
    not an id at all)."""
    code, prefix = KINDS[kind]
    label = kind.replace("_", " ")
    head, _, body = public_id.partition("_")
    if head != prefix or len(body) != 26:
        raise NotFound(f"{label} {public_id!r} not found")
    try:
        data = base64.b32decode(body.upper() + "======")
    except (ValueError, TypeError):
        raise NotFound(f"{label} {public_id!r} not found") from None
    dec = _cipher(conn).decryptor()
    block = dec.update(data) + dec.finalize()
    got_org, got_kind, row_id, pad = _LAYOUT.unpack(block)
    if pad != b"\0\0\0" or got_kind != code or got_org != int(org_id):
        raise NotFound(f"{label} {public_id!r} not found")
    return int(row_id)
