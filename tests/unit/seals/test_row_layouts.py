"""The stored rows' fast paths write what the specification writes: the guard's row checks
(``SHAPES``, ``check_row``, ``check_event``) against ``encode``/``Keys.check`` of the
``*_fields`` dicts, and the ledger's row hash against ``json.dumps`` of its content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain import seals
from sealbill.domain.seals import Check, Keys
from sealbill.store.delivery import ledger

from .test_encoding_shapes import any_text, awkward_text, values, zones

OLD, NEW = b"o" * 32, b"n" * 32
KEYS = Keys(seals.key_id(NEW), {seals.key_id(OLD): OLD, seals.key_id(NEW): NEW})
COLUMNS = {
    "contact": ("organization_id", "id", "email"),
    "link": ("organization_id", "id", "contact_id", "account_id", "role", "status",
             "verified_email", "verification_method", "verified_at"),
    "organization": ("id", "slug", "sender_email", "sender_name", "archive_email"),
}


def outcome(make: Callable[[], object]) -> tuple[str, object]:
    """What was made, or the kind of error raised instead."""
    try:
        return "made", make()
    except Exception as exc:  # any: its type is what is compared
        return "refused", type(exc)


def spec_fields(kind: str, row: Mapping[str, Any]) -> dict[str, object]:
    """The sealed fields as the ``*_fields`` functions name them (e03b24b's row_fields)."""
    if kind == "contact":
        return seals.contact_fields(int(row["organization_id"]), int(row["id"]),
                                    str(row["email"]))
    if kind == "link":
        return seals.link_fields(int(row["organization_id"]), int(row["id"]),
                                 int(row["contact_id"]), int(row["account_id"]),
                                 str(row["role"]), str(row["status"]), row["verified_email"],
                                 row["verification_method"], row["verified_at"])
    return seals.organization_fields(int(row["id"]), str(row["slug"]),
                                     str(row["sender_email"]), str(row["sender_name"]),
                                     row["archive_email"])


def spec_check_row(keys: Keys, kind: str, row: Mapping[str, Any]) -> Check:
    try:
        fields = spec_fields(kind, row)
    except (TypeError, ValueError, KeyError):
        return Check.MISMATCH
    return keys.check(kind, fields, row["seal"], row["seal_key_id"])


ids = st.integers(min_value=1, max_value=2**63)
texts = st.one_of(any_text, awkward_text)
# a row's columns: mostly what a row holds; sometimes anything (what int()/str() refuse too)
typed = {"id": ids, "organization_id": ids, "contact_id": ids, "account_id": ids,
         "verified_at": st.one_of(st.none(), st.datetimes(timezones=zones))}


def cells(column: str, wild: bool) -> st.SearchStrategy[object]:
    usual = typed.get(column, st.one_of(st.none(), texts))
    return st.one_of(usual, values, st.just("7")) if wild else usual


@st.composite
def stored_rows(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(sorted(COLUMNS)))
    wild = draw(st.sampled_from([False] * 3 + [True]))  # 1 in 4: any value in any column
    absent = draw(st.sampled_from([None] * 15 + list(COLUMNS[kind])))
    row = {name: draw(cells(name, wild)) for name in COLUMNS[kind] if name != absent}
    how = draw(st.sampled_from(["sealed", "old key", "forged", "missing", "unknown key"]))
    fields = outcome(lambda: spec_fields(kind, row))
    sealable = fields[0] == "made" and outcome(lambda: seals.encode(kind, fields[1]))[0] == "made"
    seal, kid = {  # a seal of the spec's fields when they can be sealed
        "sealed": KEYS.seal(kind, fields[1]) if sealable else ("0" * 64, KEYS.active),
        "old key": (seals.mac(OLD, kind, fields[1]) if sealable else "1" * 64,
                    seals.key_id(OLD)),
        "forged": (seals.mac(b"x" * 32, kind, fields[1]) if sealable else "2" * 64,
                   KEYS.active),
        "missing": (None, KEYS.active),
        "unknown key": ("3" * 64, "0" * 16),
    }[how]
    if draw(st.sampled_from([True] * 15 + [False])):  # now and then no seal column
        row["seal"], row["seal_key_id"] = seal, kid
    return kind, row


@given(stored_rows())
def test_a_stored_row_is_checked_as_the_check_of_its_sealed_fields(
        drawn: tuple[str, dict[str, Any]]) -> None:
    kind, row = drawn
    assert outcome(lambda: seals.check_row(KEYS, kind, row)) == outcome(
        lambda: spec_check_row(KEYS, kind, row))
    assert outcome(lambda: seals.row_fields(kind, row)) == outcome(
        lambda: spec_fields(kind, row))


@given(st.sampled_from(sorted(seals.SHAPES)), st.data())
def test_a_row_shape_is_laid_out_as_the_specification(kind: str, data: st.DataObject) -> None:
    shape = seals.SHAPES[kind]
    row = data.draw(st.lists(values, min_size=len(shape.names), max_size=len(shape.names)))
    assert outcome(lambda: shape.encode(row)) == outcome(
        lambda: seals.encode(kind, dict(zip(shape.names, row, strict=True))))


def test_an_unknown_kind_is_refused_as_before() -> None:
    assert outcome(lambda: seals.row_fields("ledger", {})) == ("refused", ValueError)
    assert seals.check_row(KEYS, "ledger", {"seal": "x", "seal_key_id": "y"}) is Check.MISMATCH


def spec_event_check(keys: Keys, row: Mapping[str, Any]) -> Check:
    """e03b24b's check_event."""
    if row["seq"] is None:
        return Check.MISSING
    try:
        computed = seals.event_hash(row)
    except (TypeError, ValueError, KeyError):
        return Check.MISMATCH
    if computed != row["row_hash"]:
        return Check.MISMATCH
    return keys.check("contact_event", seals.chained_fields(
        int(row["organization_id"]), int(row["seq"]), computed), row["seal"],
        row["seal_key_id"])


@given(st.lists(values, min_size=len(seals.EVENT_FIELDS), max_size=len(seals.EVENT_FIELDS)),
       st.sampled_from(["sealed", "forged", "missing", "unknown key", "rehashed"]),
       st.one_of(st.integers(min_value=1, max_value=9), st.none(), st.just("4")))
def test_an_event_is_checked_as_the_check_of_its_chained_fields(
        cells_: list[object], how: str, seq: object) -> None:
    row: dict[str, Any] = dict(zip(seals.EVENT_FIELDS, cells_, strict=True))
    row["organization_id"], row["seq"] = 3, seq
    computed = outcome(lambda: seals.event_hash(row))
    row["row_hash"] = computed[1] if computed[0] == "made" and how != "rehashed" else "f" * 64
    fields = seals.chained_fields(3, seq if isinstance(seq, int) else 0, str(row["row_hash"]))
    row["seal"], row["seal_key_id"] = {
        "sealed": KEYS.seal("contact_event", fields), "rehashed": KEYS.seal(
            "contact_event", fields), "forged": (seals.mac(b"x" * 32, "contact_event",
                                                           fields), KEYS.active),
        "missing": (None, None), "unknown key": ("3" * 64, "0" * 16)}[how]
    assert outcome(lambda: seals.check_event(KEYS, row)) == outcome(
        lambda: spec_event_check(KEYS, row))


# --- the delivery ledger's row hash -------------------------------------------------------

def spec_row_hash(content: Mapping[str, Any]) -> str:
    """e03b24b's ledger.row_hash."""
    canonical = {key: content[key] for key in ledger.CONTENT_FIELDS}
    canonical["queued_at"] = ledger._iso(canonical["queued_at"])
    canonical["sent_at"] = ledger._iso(canonical["sent_at"])
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


recipients = st.lists(st.fixed_dictionaries(
    {"contact_id": st.integers(), "email": st.one_of(any_text, awkward_text)},
    optional={"name": any_text, "role": st.none()}), max_size=3)
aware = st.datetimes(timezones=zones)
times = st.one_of(aware, st.datetimes(), st.just("2026-11-01"), values)
# what the ledger's columns hold, mostly, and sometimes anything JSON may or may not write
usual_cells = {name: texts for name in ledger.CONTENT_FIELDS} | {
    name: ids for name in ("organization_id", "seq", "account_id", "invoice_id", "part")} | {
    "run_id": st.one_of(st.none(), ids), "recipients": recipients,
    "data_categories": st.lists(any_text, max_size=3), "queued_at": aware, "sent_at": aware}
wild_cells = {name: st.one_of(usual, values, st.floats(), times,
                              st.lists(st.integers(), max_size=2))
              for name, usual in usual_cells.items()}


@st.composite
def ledger_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A ledger row's content: mostly as written; else one column that holds anything
    (what JSON or _iso refuse included), or one column missing."""
    row = draw(st.fixed_dictionaries(usual_cells))
    odd = draw(st.sampled_from([None] * 3 + list(ledger.CONTENT_FIELDS)))
    if odd is not None and draw(st.booleans()):
        row[odd] = draw(wild_cells[odd])
    elif odd is not None:
        del row[odd]
    return row


@given(ledger_rows())
def test_a_ledger_row_is_hashed_as_the_json_of_its_content(content: dict[str, Any]) -> None:
    assert outcome(lambda: ledger.row_hash(content)) == outcome(
        lambda: spec_row_hash(content))
    if len(content) == len(ledger.CONTENT_FIELDS):
        walked = [content[name] for name in ledger.CONTENT_FIELDS] + ["row hash", "seal"]
        assert outcome(lambda: ledger.values_hash(walked)) == outcome(
            lambda: spec_row_hash(content))


def test_a_typical_ledger_row_is_hashed_as_before() -> None:
    at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    content = {name: "x" for name in ledger.CONTENT_FIELDS} | {
        "organization_id": 1, "seq": 2, "run_id": None, "part": 1,
        "recipients": [{"email": "é@x.test", "contact_id": 3}], "data_categories": ["a"],
        "queued_at": at, "sent_at": at.astimezone(timezone(timedelta(hours=2)))}
    assert ledger.row_hash(content) == spec_row_hash(content)


@given(st.integers(min_value=1), st.integers(min_value=1),
       st.text("0123456789abcdef", min_size=64, max_size=64))
def test_a_chained_seal_is_the_seal_of_its_fields(org_id: int, seq: int, row_hash: str) -> None:
    assert KEYS.seal_chained("ledger_row", org_id, seq, row_hash) == KEYS.seal(
        "ledger_row", seals.chained_fields(org_id, seq, row_hash))
