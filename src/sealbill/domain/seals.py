"""Seals: a MAC over the canonical content of a fact that entitles an address (pure).

A *fact* is a kind (``"contact"``, ``"link"``, ``"organization"``, ``"contact_event"``,
``"ledger_row"``...) and a mapping of named fields. Its **canonical encoding** is:

    b"sealbill-seal-v1\\n" + kind (UTF-8) + b"\\n" + JSON(fields)

where ``JSON`` is ``json.dumps(fields, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded in UTF-8, with values restricted to ``None``, ``bool``,
``int``, ``str`` and timezone-aware ``datetime`` (written as UTC ISO 8601 with microseconds,
``2026-11-01T08:00:00.000000+00:00``, so the same instant read back from SQLite or PostgreSQL
encodes identically). Floats, naive datetimes and other types are refused (``TypeError``):
an encoding that depended on ``repr`` could differ between two reads of one row.

The **seal** is ``HMAC-SHA-256(key, encoding)`` in lowercase hex; ``key_id`` names the key
(:func:`key_id`: the first 16 hex digits of the SHA-256 of the key), stored beside the seal so
that verification picks the right key after a rotation.

Invariants:
- the encoding is a function of (kind, fields) only: field order does not matter, and two
  different (kind, fields) never encode alike (the kind is separated from the JSON by a
  newline, which JSON never starts with, and JSON is injective on these values);
- :func:`check` answers only "valid", "missing", "unknown key" or "mismatch": a row whose seal
  is absent, made with a key the keyring does not hold, or that does not match is not valid;
  the comparison is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _hashlib import HASH

PREFIX = b"sealbill-seal-v1\n"
# ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, built once
# (``dumps`` with these arguments builds an encoder at every call): the same text.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The string escaping ``_JSON`` applies to keys and string values (``ensure_ascii=False``).
_escape: Callable[[str], str] = json.encoder.encode_basestring
Value = bool | int | str | datetime | None


def _plain(name: str, value: object) -> bool | int | str | None:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"field {name!r}: naive datetime cannot be sealed")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    raise TypeError(f"field {name!r}: {type(value).__name__} cannot be sealed")


def _check_kind(kind: str) -> None:
    if not kind or "\n" in kind:
        raise ValueError("a fact kind is a non-empty single line")


def encode(kind: str, fields: Mapping[str, object]) -> bytes:
    """The canonical bytes of a fact (see the module docstring): the specification that
    :class:`Shape` lays out faster."""
    _check_kind(kind)
    plain = {name: _plain(name, value) for name, value in fields.items()}
    text = _JSON.encode(plain)
    return PREFIX + kind.encode("utf-8") + b"\n" + text.encode("utf-8")


def _json_value(name: str, value: object) -> str:
    """One field's value as ``_JSON`` writes it inside the fields' object (aware datetimes in
    UTC written directly: what ``_plain`` makes of them is plain text, escaped to itself)."""
    if type(value) is datetime and value.tzinfo is UTC:
        return '"' + value.isoformat(timespec="microseconds") + '"'
    return _JSON.encode(_plain(name, value))


class Shape:
    """The canonical encoding of the facts of one kind whose field names are fixed, with the
    JSON object's sorted keys laid out once (a chain check encodes hundreds of thousands).

    Invariant: ``Shape(kind, names).encode(values)`` is ``encode(kind, dict(zip(names,
    values)))`` byte for byte, and raises where it raises (a Hypothesis test holds the two
    together over arbitrary values): a value that is exactly ``str``, ``int`` or ``None`` is
    written by the escaping and ``int`` form ``_JSON`` uses, any other goes through ``_plain``
    and ``_JSON`` as :func:`encode` sends it.
    """

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        _check_kind(kind)
        if not names or len(set(names)) != len(names) or not all(
                type(name) is str for name in names):
            raise ValueError("a shape names its fields once each, as text")
        order = sorted(range(len(names)), key=names.__getitem__)
        self.kind, self.names = kind, tuple(names)
        self.head = PREFIX + kind.encode("utf-8") + b"\n"  # the bytes before the JSON
        self._sorted = tuple(names[i] for i in order)
        # the values in key order; itemgetter of one index gives the value, not a 1-tuple
        pick = operator.itemgetter(*order)
        self._pick: Callable[[Sequence[object]], Sequence[object]] = (
            pick if len(order) > 1 else lambda values: (pick(values),))
        self._text = "{" + ",".join(_escape(name).replace("%", "%%") + ":%s"
                                    for name in self._sorted) + "}"

    def encode(self, values: Sequence[object]) -> bytes:
        """The canonical bytes of the fact whose fields are ``values`` in :attr:`names` order
        (items after the last name are not read)."""
        text = self._text % tuple([
            _escape(value) if type(value) is str
            else int.__repr__(value) if type(value) is int
            else "null" if value is None
            else _json_value(name, value)
            for name, value in zip(self._sorted, self._pick(values), strict=True)])
        return self.head + text.encode("utf-8")


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex digits of its SHA-256 (reveals nothing usable)."""
    return hashlib.sha256(key).hexdigest()[:16]


_BLOCK = 64  # SHA-256's block size
# RFC 2104's pads as translation tables: each key byte XOR 0x36 (inner), 0x5C (outer)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=16)
def _keyed(key: bytes) -> tuple[HASH, HASH]:
    """HMAC-SHA-256 (RFC 2104) with the key absorbed: the SHA-256 states of the key's inner
    and outer pads, copied for each message — the key's pads are hashed once, not for every
    row a chain check reads, and a copy of two hash states costs less than a copy of
    ``hmac.HMAC`` (its Python-level ``copy``). The same digest as ``hmac.new(key, message,
    "sha256")``, for any key length (tested)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def mac_encoded(key: bytes, message: bytes) -> str:
    """HMAC-SHA-256 of already encoded canonical bytes, in lowercase hex."""
    inner_pad, outer_pad = _keyed(key)
    inner, outer = inner_pad.copy(), outer_pad.copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.hexdigest()


def mac(key: bytes, kind: str, fields: Mapping[str, object]) -> str:
    return mac_encoded(key, encode(kind, fields))


class Check(Enum):
    VALID = "valid"
    MISSING = "missing"  # no seal, or no key id, on the row
    UNKNOWN_KEY = "unknown_key"  # sealed with a key this keyring does not hold
    MISMATCH = "mismatch"  # the row's content is not what was sealed


@dataclass(frozen=True)
class Keys:
    """The keys that verify (``by_id``) and the one that seals (``active``)."""

    active: str
    by_id: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.active not in self.by_id:
            raise ValueError("the active key must be one of the keys")

    def seal(self, kind: str, fields: Mapping[str, object]) -> tuple[str, str]:
        """(seal, key id) with the active key."""
        return mac(self.by_id[self.active], kind, fields), self.active

    def check(self, kind: str, fields: Mapping[str, object], seal: str | None,
              seal_key_id: str | None) -> Check:
        key = self._key(seal, seal_key_id)
        if isinstance(key, Check):
            return key
        return _verdict(mac(key, kind, fields), seal)

    def check_chained(self, kind: str, org_id: int, seq: int, row_hash: str, seal: str | None,
                      seal_key_id: str | None) -> Check:
        """``check(kind, chained_fields(org_id, seq, row_hash), seal, seal_key_id)``, the
        encoding laid out once per kind (:func:`chained_encoding`)."""
        key = self._key(seal, seal_key_id)
        if isinstance(key, Check):
            return key
        return _verdict(mac_encoded(key, chained_encoding(kind, org_id, seq, row_hash)), seal)

    def check_shaped(self, shape: Shape, values: Sequence[object], seal: str | None,
                     seal_key_id: str | None) -> Check:
        """``check(shape.kind, dict(zip(shape.names, values)), seal, seal_key_id)``: the
        key looked up first, the content encoded only when there is one (as :meth:`check`)."""
        key = self._key(seal, seal_key_id)
        if isinstance(key, Check):
            return key
        return _verdict(mac_encoded(key, shape.encode(values)), seal)

    def seal_chained(self, kind: str, org_id: int, seq: int, row_hash: str) -> tuple[str, str]:
        """``seal(kind, chained_fields(org_id, seq, row_hash))`` (:func:`chained_encoding`)."""
        return (mac_encoded(self.by_id[self.active],
                            chained_encoding(kind, org_id, seq, row_hash)), self.active)

    def _key(self, seal: str | None, seal_key_id: str | None) -> bytes | Check:
        """The key that checks this seal, or why there is none."""
        if not seal or not seal_key_id:
            return Check.MISSING
        key = self.by_id.get(seal_key_id)
        return Check.UNKNOWN_KEY if key is None else key


def _verdict(expected: str, seal: str | None) -> Check:
    return (Check.VALID if seal is not None and hmac.compare_digest(expected, seal)
            else Check.MISMATCH)


# --- the sealed facts: which fields of which row, in one place -------------------------------

def contact_fields(org_id: int, contact_id: int, email: str) -> dict[str, object]:
    """A contact's address: who it is (org, id) and where mail to it goes."""
    return {"organization_id": org_id, "contact_id": contact_id, "email": email}


def link_fields(org_id: int, link_id: int, contact_id: int, account_id: int, role: str,
                status: str, verified_email: str | None, method: str | None,
                verified_at: datetime | None) -> dict[str, object]:
    """A contact's link to an account: role, status, and the verification of that exact
    address (the address verified, how, when) — a verification does not follow the contact
    to another address."""
    return {"organization_id": org_id, "link_id": link_id, "contact_id": contact_id,
            "account_id": account_id, "role": role, "status": status,
            "verified_email": verified_email, "verification_method": method,
            "verified_at": verified_at}


def organization_fields(org_id: int, slug: str, sender_email: str, sender_name: str,
                        archive_email: str | None, dkim_domain: str | None = None,
                        dkim_selector: str | None = None) -> dict[str, object]:
    """The organization's sending identity: the sender, the archive copy (the one extra
    recipient a message may carry) and the DKIM domain/selector when stored."""
    return {"organization_id": org_id, "slug": slug, "sender_email": sender_email,
            "sender_name": sender_name, "archive_email": archive_email,
            "dkim_domain": dkim_domain, "dkim_selector": dkim_selector}


def chained_fields(org_id: int, seq: int, row_hash: str) -> dict[str, object]:
    """A row of a hash chain (contact events, delivery ledger): sealing its hash seals its
    content and its place (the hash covers the previous row's hash)."""
    return {"organization_id": org_id, "seq": seq, "row_hash": row_hash}


CHAINED_FIELDS = ("organization_id", "seq", "row_hash")
# the JSON of chained_fields, keys sorted; %d writes an exact int as json does (int.__repr__)
_CHAINED_TEXT = '{"organization_id":%d,"row_hash":%s,"seq":%d}'


@lru_cache(maxsize=8)
def _chained_shape(kind: str) -> Shape:
    return Shape(kind, CHAINED_FIELDS)


def chained_encoding(kind: str, org_id: int, seq: int, row_hash: str) -> bytes:
    """``encode(kind, chained_fields(org_id, seq, row_hash))``, laid out once per kind; a
    chain check's row (two ``int`` and a ``str``, the usual case) written at once."""
    shape = _chained_shape(kind)
    if type(org_id) is int and type(seq) is int and type(row_hash) is str:
        return shape.head + (_CHAINED_TEXT % (org_id, _escape(row_hash), seq)).encode("utf-8")
    return shape.encode((org_id, seq, row_hash))


def checkpoint_fields(chain: str, org_id: int, seq: int, head_hash: str) -> dict[str, object]:
    """A chain's head as seen at one moment: written outside the database so that a
    truncated tail (fewer rows than some checkpoint counted) is seen."""
    return {"chain": chain, "organization_id": org_id, "seq": seq, "head_hash": head_hash}


EVENT_FIELDS = ("organization_id", "seq", "contact_id", "account_id", "role", "event", "actor",
                "method", "reason", "old_value", "new_value", "at", "prev_hash")


EVENT = Shape("contact_event", EVENT_FIELDS)
_EVENT_VALUES = operator.itemgetter(*EVENT_FIELDS)


def event_hash(row: Mapping[Any, Any]) -> str:
    """The ``row_hash`` of a ``contact_events`` row: SHA-256 of its canonical encoding."""
    return event_values_hash(_EVENT_VALUES(row))


def event_values_hash(values: Sequence[object]) -> str:
    """:func:`event_hash` of a row whose :data:`EVENT_FIELDS` come first, in that order (a
    chain check selects them so)."""
    return hashlib.sha256(EVENT.encode(values)).hexdigest()


# The stored rows' sealed facts, laid out once: their names in the order the *_fields
# functions above take them (the guard checks three of them for every recipient it sends to).
SHAPES = {
    "contact": Shape("contact", ("organization_id", "contact_id", "email")),
    "link": Shape("link", ("organization_id", "link_id", "contact_id", "account_id", "role",
                           "status", "verified_email", "verification_method",
                           "verified_at")),
    "organization": Shape("organization", ("organization_id", "slug", "sender_email",
                                           "sender_name", "archive_email", "dkim_domain",
                                           "dkim_selector")),
}


def row_values(kind: str, row: Mapping[Any, Any]) -> tuple[object, ...]:
    """The sealed fields of a stored ``organizations``/``contacts``/``contact_links`` row, in
    the order of ``SHAPES[kind].names`` (what :func:`row_fields` names)."""
    if kind == "contact":
        return int(row["organization_id"]), int(row["id"]), str(row["email"])
    if kind == "link":
        return (int(row["organization_id"]), int(row["id"]), int(row["contact_id"]),
                int(row["account_id"]), str(row["role"]), str(row["status"]),
                row["verified_email"], row["verification_method"], row["verified_at"])
    if kind == "organization":
        return (int(row["id"]), str(row["slug"]), str(row["sender_email"]),
                str(row["sender_name"]), row["archive_email"], None, None)
    raise ValueError(f"no sealed fact of kind {kind!r}")


def row_fields(kind: str, row: Mapping[Any, Any]) -> dict[str, object]:
    """The sealed fields of a stored ``organizations``/``contacts``/``contact_links`` row."""
    values = row_values(kind, row)  # an unknown kind: its ValueError
    return dict(zip(SHAPES[kind].names, values, strict=True))


def check_row(keys: Keys, kind: str, row: Mapping[Any, Any]) -> Check:
    """A stored row's seal recomputed from its content (unreadable content: mismatch)."""
    try:
        values = row_values(kind, row)
    except (TypeError, ValueError, KeyError):
        return Check.MISMATCH
    return keys.check_shaped(SHAPES[kind], values, row["seal"], row["seal_key_id"])


def check_event(keys: Keys, row: Mapping[Any, Any]) -> Check:
    """A chained event row: its hash recomputed, and the seal over (org, seq, that hash)."""
    if row["seq"] is None:
        return Check.MISSING
    try:
        computed = event_hash(row)
    except (TypeError, ValueError, KeyError):
        return Check.MISMATCH
    if computed != row["row_hash"]:
        return Check.MISMATCH
    return keys.check_chained("contact_event", int(row["organization_id"]), int(row["seq"]),
                              computed, row["seal"], row["seal_key_id"])
