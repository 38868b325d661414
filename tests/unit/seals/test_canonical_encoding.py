"""The canonical encoding and MAC of a sealed fact (domain/seals.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain import seals
from sealbill.domain.seals import Check, Keys

values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                   st.datetimes(timezones=st.just(UTC)))
facts = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=6)


@given(facts, st.randoms())
def test_field_order_does_not_change_the_encoding(fields: dict[str, object], rnd: object
                                                   ) -> None:
    items = list(fields.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert seals.encode("contact", dict(items)) == seals.encode("contact", fields)


@given(facts, facts)
def test_different_facts_encode_differently(a: dict[str, object], b: dict[str, object]) -> None:
    def typed(fields: dict[str, object]) -> dict[str, tuple[type, object]]:
        # True == 1 in Python, not in the encoding: compare types too
        return {k: (type(p), p) for k, v in fields.items() for p in [seals._plain(k, v)]}

    same = seals.encode("link", a) == seals.encode("link", b)
    assert same == (typed(a) == typed(b))


def test_true_and_one_are_different_facts() -> None:
    assert seals.encode("link", {"x": True}) != seals.encode("link", {"x": 1})


def test_the_kind_is_part_of_the_encoding() -> None:
    assert seals.encode("contact", {"x": 1}) != seals.encode("link", {"x": 1})
    assert seals.encode("contact", {}).startswith(b"sealbill-seal-v1\ncontact\n")


def test_one_instant_in_any_timezone_encodes_alike() -> None:
    paris = timezone(timedelta(hours=1))
    at = datetime(2026, 11, 1, 9, 0, tzinfo=paris)
    assert seals.encode("e", {"at": at}) == seals.encode("e", {"at": at.astimezone(UTC)})
    assert b"2026-11-01T08:00:00.000000+00:00" in seals.encode("e", {"at": at})


@pytest.mark.parametrize("bad", [1.5, datetime(2026, 1, 1), b"bytes", [1]])
def test_values_without_one_exact_form_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="field 'v'"):
        seals.encode("e", {"v": bad})


def test_a_seal_verifies_only_under_its_key_and_content() -> None:
    old, new = b"k" * 32, b"n" * 32
    keys = Keys(seals.key_id(new), {seals.key_id(old): old, seals.key_id(new): new})
    fields = seals.contact_fields(1, 7, "a@b.example")
    seal, kid = keys.seal("contact", fields)
    assert kid == seals.key_id(new)
    assert keys.check("contact", fields, seal, kid) is Check.VALID
    assert keys.check("contact", seals.contact_fields(1, 8, "a@b.example"), seal,
                      kid) is Check.MISMATCH
    assert keys.check("contact", fields, seal, "0" * 16) is Check.UNKNOWN_KEY
    assert keys.check("contact", fields, None, kid) is Check.MISSING
    sealed_by_old = seals.mac(old, "contact", fields)
    assert keys.check("contact", fields, sealed_by_old, seals.key_id(old)) is Check.VALID
    assert keys.check("contact", fields, sealed_by_old, kid) is Check.MISMATCH


def test_a_key_id_names_a_key_without_revealing_it() -> None:
    kid = seals.key_id(b"secret")
    assert len(kid) == 16 and kid != seals.key_id(b"secreT")
    assert "secret" not in kid
