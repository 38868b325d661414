"""The read-back's quick readings give the general code's answer (or its refusal).

Three quick readings of :mod:`sealbill.mail.readback` stand in for slower general code on the
shapes sealbill writes: recipient headers that are lists of bare addresses (instead of
``getaddresses``), subjects in plain ASCII or UTF-8 base64 encoded words (instead of
``make_header(decode_header())``) and base64 lines cut out by position (instead of deleting
every CR and LF). Each is compared here with the code it replaces, on generated values that
mostly have the quick shape and on near misses, so that a quick reading that answers differs
nowhere from the general one, and a value it does not recognize goes to the general one.
"""

from __future__ import annotations

from email.header import decode_header, make_header
from email.utils import getaddresses

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.mail.readback import NotStrict, _bare_addresses, decode_base64_lines, read_subject

_ATOM = st.text(st.sampled_from(list("aZ09_+-")), min_size=1, max_size=5)
_DOMAIN_LABEL = st.text(st.sampled_from(list("aZ09-")), min_size=1, max_size=5)
_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}",
                     st.lists(_ATOM, min_size=1, max_size=3).map(".".join),
                     st.lists(_DOMAIN_LABEL, min_size=1, max_size=3).map(".".join))
_SEPARATOR = st.sampled_from([", ", ",\r\n ", ",", " ,", ",\r\n\t", " "])
_NEAR_MISS = st.text(st.sampled_from(list('aZ09_+-.@, \r\n\t<>"()=?;:[]\\')), max_size=30)


def _general_subject(value: str) -> tuple[str, object]:
    try:
        return "read", str(make_header(decode_header(value)))
    except Exception as exc:  # the guard refuses a message whose subject raises
        return "raised", type(exc)


def _quick_subject(value: str) -> tuple[str, object]:
    try:
        return "read", read_subject(value)
    except Exception as exc:  # compared with the general reading's exception
        return "raised", type(exc)


@settings(max_examples=300)
@given(st.lists(st.tuples(_ADDRESS, _SEPARATOR), min_size=1, max_size=4))
def test_bare_address_lists_read_as_getaddresses_reads_them(
        items: list[tuple[str, str]]) -> None:
    value = "".join(address + separator for address, separator in items)
    value = value[:len(value) - len(items[-1][1])]
    quick = _bare_addresses([value])
    if all(separator in (", ", ",\r\n ") for _, separator in items[:-1]):
        assert quick is not None, value  # the shape sealbill writes is read quickly
    if quick is not None:
        assert quick == getaddresses([value])


@settings(max_examples=300)
@given(st.lists(_NEAR_MISS, min_size=1, max_size=3))
def test_other_address_values_are_left_to_getaddresses_or_read_alike(values: list[str]) -> None:
    quick = _bare_addresses(values)
    assert quick is None or quick == getaddresses(values)


def test_a_display_name_or_comment_is_left_to_getaddresses() -> None:
    for value in ("Ann <a@b.example>", "a@b.example (Ann)", '"a"@b.example', "a@[10.0.0.1]"):
        assert _bare_addresses([value]) is None


_WORD = st.binary(max_size=24).map(
    lambda raw: "=?utf-8?b?" + pybase64.b64encode(raw).decode("ascii") + "?=")
_SUBJECT = st.one_of(
    st.text(st.characters(min_codepoint=9, max_codepoint=126,
                          blacklist_characters="\r\n\x0b\x0c"), max_size=40),
    st.lists(_WORD, min_size=1, max_size=4).map("\r\n ".join),
    st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2fff), max_size=8)
             .map(lambda text: "=?utf-8?b?" + pybase64.b64encode(text.encode()).decode() + "?="),
             min_size=1, max_size=4).map("\r\n ".join),
    st.lists(st.one_of(_WORD, st.text(st.sampled_from(list("=?utf-8bBqQ \r\n\tQQ=")),
                                      max_size=12)), max_size=5).map("".join))


@settings(max_examples=500)
@given(_SUBJECT)
def test_subjects_read_as_decode_header_reads_them(value: str) -> None:
    assert _quick_subject(value) == _general_subject(value)


def _translated(body: bytes) -> bytes:
    """What the strict reader did before: every CR and LF deleted, then a strict decode."""
    if not body:
        return b""
    full = (len(body) - 2) // 78
    if (not body.endswith(b"\r\n") or body[76:78 * full:78] != b"\r" * full
            or body[77:78 * full:78] != b"\n" * full):
        raise NotStrict("lines")
    compact = body.translate(None, b"\r\n")
    if len(compact) != len(body) - 2 * (full + 1) or not compact:
        raise NotStrict("a line break inside a line")
    try:
        return pybase64.b64decode(compact, validate=True)
    except ValueError:
        raise NotStrict("alphabet") from None


def _outcome(read: object, body: bytes) -> bytes | None:
    try:
        return read(body)  # type: ignore[operator, no-any-return]
    except NotStrict:
        return None


_EDIT = st.tuples(st.integers(0, 1 << 16), st.sampled_from(["set", "delete", "insert"]),
                  st.sampled_from(list(b"\r\n=A-/ \x00")))


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=200), st.integers(0, 4).map(lambda k: bytes(57 * 64 * k + k))),
       st.lists(_EDIT, max_size=3))
def test_base64_lines_cut_by_position_decode_as_deleting_line_breaks(
        raw: bytes, edits: list[tuple[int, str, int]]) -> None:
    body = bytearray(pybase64.encodebytes(raw).replace(b"\n", b"\r\n"))
    for at, kind, byte in edits:
        if not body:
            break
        at %= len(body)
        if kind == "set":
            body[at] = byte
        elif kind == "delete":
            del body[at]
        else:
            body.insert(at, byte)
    assert _outcome(decode_base64_lines, bytes(body)) == _outcome(_translated, bytes(body))
    if not edits:
        assert decode_base64_lines(bytes(body)) == raw


@pytest.mark.parametrize("lines", [1, 63, 64, 65, 128, 129])
def test_a_body_of_whole_blocks_and_a_remainder_is_read(lines: int) -> None:
    raw = bytes(range(256)) * (lines * 57 // 256 + 1)
    raw = raw[:lines * 57 - 5]
    body = pybase64.encodebytes(raw).replace(b"\n", b"\r\n")
    assert decode_base64_lines(body) == raw
    with pytest.raises(NotStrict):
        decode_base64_lines(body[:100] + b"\r" + body[101:])
