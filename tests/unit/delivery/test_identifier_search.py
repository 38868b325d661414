"""The guard's identifier search (automaton) against the token index it replaces.

Property: for any text and any set of own owners, :class:`AutomatonSearch` finds exactly the
foreign identifiers :meth:`IdentifierIndex.foreign_hits` finds — including identifiers glued
to letters, digits or trimmed punctuation, hidden behind HTML entities, overlapping each other,
next to non-ASCII letters, and identifiers that are phrases rather than tokens.
"""

from __future__ import annotations

import re
import sys

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealbill.domain.identifiers import (
    IdentifierIndex,
    _is_word,
    is_whole_token,
    occurs_as_token,
    tokens,
)
from sealbill.pipeline.delivery.identifier_search import AutomatonSearch

ENTRIES = [("number", "F-0007", "invoice:7"), ("number", "F-00071", "invoice:71"),
           ("reference", "A07x", "account:1"), ("reference", "A 07", "account:2"),
           ("reference", "07x", "account:3"), ("reference", "\u00e907", "account:4"),
           ("number", "F-0007", "invoice:70")]  # one value, two owners
INDEX = IdentifierIndex.build(ENTRIES)
SEARCH = AutomatonSearch(INDEX)
OWNERS = (set(), {"invoice:7"}, {"account:2"}, {"account:1", "invoice:71"})
ALPHABET = "F-0 7A1x.;/&amp;#48;<p> \n\u00e9\u00c9\u20ac\u2014_,"


@given(text=st.text(st.sampled_from(ALPHABET), max_size=80))
@example(text="F-0007.")
@example(text="F-00071 F-0007/")
@example(text="xF-0007")
@example(text="\u00e9F-0007")
@example(text="F&#45;0007")
@example(text="/.F-0007-/")
@example(text="A 07x")
def test_automaton_finds_what_the_token_index_finds(text: str) -> None:
    for own in OWNERS:
        assert SEARCH.foreign_hits(text, own) == INDEX.foreign_hits(text, own)


@given(text=st.text(st.sampled_from(ALPHABET), max_size=60),
       value=st.sampled_from(["F-0007", "F-00071", "A07x", "07x", "\u00e907", "_7", "7"]))
def test_occurs_as_token_is_membership_in_tokens(text: str, value: str) -> None:
    import html
    plain = html.unescape(text)
    assert occurs_as_token(plain, value) == (value in tokens(text))


def test_is_whole_token_needs_the_whole_run() -> None:
    text = "F-0007 F-00071 xF-0007 F-0007. (F-0007)"
    starts = [m.start() for m in re.finditer("F-0007", text)]
    assert [is_whole_token(text, s, s + 6) for s in starts] == [True, False, False, True, True]


def test_is_word_is_the_regex_word_class_for_every_code_point() -> None:
    word = re.compile(r"\w")
    wrong = [c for c in map(chr, range(sys.maxunicode + 1))
             if _is_word(c) != bool(word.match(c))]
    assert wrong == []


def test_an_index_without_token_identifiers_still_finds_phrases() -> None:
    only_phrases = AutomatonSearch(IdentifierIndex.build([("reference", "A 07", "account:2")]))
    assert only_phrases.foreign_hits("see A 07 here", set()) == {
        ("reference", "A 07", "account:2")}
    assert only_phrases.foreign_hits("see A 07 here", {"account:2"}) == set()


OWNER_SHAPES = st.sampled_from(["account:1", "account:2", "invoice:7", "invoice:70",
                                "account:007", "invoice:-1", "client:3", "account:",
                                "account:99999999999999999999"])
VALUES = st.sampled_from(["F-0007", "F-00071", "A07x", "A 07", "07x", "\u00e907", "7", "F-0007x"])


@given(entries=st.lists(st.tuples(st.sampled_from(["number", "reference", "other"]), VALUES,
                                  OWNER_SHAPES), max_size=12),
       text=st.text(st.sampled_from(ALPHABET), max_size=60))
@example(entries=[("number", "F-0007", "invoice:7"), ("number", "F-0007", "invoice:7"),
                  ("reference", "F-0007", "account:007")], text="F-0007")
@settings(deadline=None)
def test_the_packed_automaton_streamed_finds_what_the_token_index_finds(
        entries: list[tuple[str, str, str]], text: str) -> None:
    """Packed entries, entries in the side list (several owners for one token, owners that
    are not ``account:<id>`` / ``invoice:<id>``), built from the index or streamed from the
    entries: the same hits as the reference."""
    index = IdentifierIndex.build(entries)
    streamed = AutomatonSearch.from_entries(iter(entries))
    for search in (AutomatonSearch(index), streamed):
        for own in (set(), {"account:1"}, {"invoice:7", "account:007"}):
            for probe in (text, " ".join(v for _, v, _ in entries) + " " + text):
                assert search.foreign_hits(probe, own) == index.foreign_hits(probe, own)


def test_a_token_too_long_for_the_length_array_is_found_through_the_side_list() -> None:
    token = "x" * 65535 + "7"  # 65,536 characters: one more than an array('H') slot holds
    entries = [("reference", token, "account:1"), ("number", "F-0007", "invoice:7")]
    search = AutomatonSearch.from_entries(entries)
    assert search.foreign_hits(f"a {token}.", set()) == {("reference", token, "account:1")}
    assert search.foreign_hits(f"a {token}7", set()) == set()
