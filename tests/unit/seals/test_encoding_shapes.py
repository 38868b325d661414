"""The fast layouts of the canonical encoding (``Shape``, ``chained_encoding``) and the MAC
write exactly what the specification writes (``seals.encode``, ``hmac.new``)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sealbill.domain import seals
from sealbill.domain.seals import Check, Keys, Shape

# Any code point, lone surrogates and control characters included (hypothesis leaves
# surrogates out unless asked): the specification refuses what UTF-8 cannot write.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
awkward_text = st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "é", "😀",
                                "\ud800", "%s", "%", "</script>", ""])
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                         timezone(timedelta(hours=-11))])
# what a row may hold, and what the specification refuses (floats, naive datetimes, bytes)
values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    any_text, awkward_text, st.datetimes(timezones=zones), st.datetimes(), st.floats(),
    st.binary(max_size=3))
names = st.lists(st.one_of(any_text, awkward_text), min_size=1, max_size=6, unique=True)


def outcome(make: Callable[[], object]) -> tuple[str, object]:
    """The bytes made, or the kind of error raised instead."""
    try:
        return "bytes", make()
    except (TypeError, ValueError) as exc:
        return "refused", type(exc)


@given(st.lists(values, min_size=len(seals.EVENT_FIELDS), max_size=len(seals.EVENT_FIELDS)))
@example([1, 2, 3, None, "billing", "verified", 'a "quoted" \\ actor\n', None, "\ud800",
          None, None, datetime(2026, 11, 1, 8, tzinfo=UTC), "0" * 64])
def test_an_event_is_laid_out_byte_for_byte_as_the_specification(row: list[object]) -> None:
    fields = dict(zip(seals.EVENT_FIELDS, row, strict=True))
    assert outcome(lambda: seals.EVENT.encode(row)) == outcome(
        lambda: seals.encode("contact_event", fields))


@given(st.text(min_size=1).filter(lambda k: "\n" not in k), names, st.data())
def test_any_shape_is_laid_out_byte_for_byte_as_the_specification(
        kind: str, field_names: list[str], data: st.DataObject) -> None:
    row = data.draw(st.lists(values, min_size=len(field_names), max_size=len(field_names)))
    assert outcome(lambda: Shape(kind, field_names).encode(row)) == outcome(
        lambda: seals.encode(kind, dict(zip(field_names, row, strict=True))))


def test_an_event_hash_reads_the_event_fields_of_a_longer_row() -> None:
    row = {name: None for name in seals.EVENT_FIELDS} | {
        "organization_id": 1, "seq": 1, "contact_id": 2, "event": "added", "actor": "t",
        "at": datetime(2026, 11, 1, tzinfo=UTC), "prev_hash": "0" * 64}
    spec = hashlib.sha256(seals.encode("contact_event", row)).hexdigest()
    walked = [row[name] for name in seals.EVENT_FIELDS] + [99, "row hash", "seal", "key"]
    assert seals.event_hash(row) == seals.event_values_hash(walked) == spec


@pytest.mark.parametrize("bad", [[], ["a", "a"], ["a", 1]])
def test_a_shape_names_each_field_once_as_text(bad: Sequence[object]) -> None:
    with pytest.raises(ValueError):
        Shape("k", bad)  # type: ignore[arg-type]


@given(st.sampled_from(["contact_event", "ledger_row"]), st.integers(), st.integers(),
       st.one_of(any_text, st.text("0123456789abcdef", min_size=64, max_size=64)))
def test_a_chained_row_is_laid_out_as_the_specification(kind: str, org_id: int, seq: int,
                                                        row_hash: str) -> None:
    assert outcome(lambda: seals.chained_encoding(kind, org_id, seq, row_hash)) == outcome(
        lambda: seals.encode(kind, seals.chained_fields(org_id, seq, row_hash)))


@given(st.binary(max_size=200), st.binary(max_size=300))
@example(b"", b"")
@example(b"k" * 64, b"m")
@example(b"k" * 65, b"m")
def test_the_mac_is_hmac_sha256_for_any_key_length(key: bytes, message: bytes) -> None:
    assert seals.mac_encoded(key, message) == hmac.new(key, message, "sha256").hexdigest()


@given(st.integers(min_value=1), st.integers(min_value=1),
       st.text("0123456789abcdef", min_size=64, max_size=64),
       st.sampled_from(["sealed", "other content", "missing", "unknown key", "old key"]))
def test_a_chained_check_answers_as_the_check_of_its_fields(org_id: int, seq: int,
                                                            row_hash: str, case: str) -> None:
    old, new = b"o" * 32, b"n" * 32
    keys = Keys(seals.key_id(new), {seals.key_id(old): old, seals.key_id(new): new})
    fields = seals.chained_fields(org_id, seq, row_hash)
    seal, kid = {
        "sealed": keys.seal("contact_event", fields),
        "other content": keys.seal("contact_event", seals.chained_fields(org_id, seq + 1,
                                                                         row_hash)),
        "missing": (None, seals.key_id(new)),
        "unknown key": (seals.mac(b"x" * 32, "contact_event", fields), "0" * 16),
        "old key": (seals.mac(old, "contact_event", fields), seals.key_id(old)),
    }[case]
    chained = keys.check_chained("contact_event", org_id, seq, row_hash, seal, kid)
    assert chained is keys.check("contact_event", fields, seal, kid)
    assert (chained is Check.VALID) == (case in ("sealed", "old key"))
