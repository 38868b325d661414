"""The run's identifiers searched in a text in one pass (Aho-Corasick), for the guard.

:class:`~sealbill.domain.identifiers.IdentifierIndex` is the reference: it cuts the text into
tokens with a regular expression and looks each token up — about 0.1 ms per message on the
bodies and the XML, a tenth of the guard. :class:`AutomatonSearch` gives the same answers
(the tests compare them) by running the identifiers' automaton (pyahocorasick, C) over the
text and keeping an occurrence only when it is a whole token there
(:func:`~sealbill.domain.identifiers.is_whole_token`): about ten times faster, because only the
few occurrences of identifiers reach Python. Identifiers that are not one token (phrases) are
searched as substrings, as the reference does.

Memory: the automaton holds one integer per token, not Python objects — for the usual entry
(one kind, an owner ``account:<id>`` or ``invoice:<id>``) an index into two arrays (the entry
packed in one integer, the token's length); any other token (several different entries,
another owner shape, a token of 65,536 characters or more) points into a short side list.
The run's identifiers are streamed into it (:meth:`AutomatonSearch.from_entries`): no list of
them is kept. For 100,000 accounts and invoices that is about 14 MB instead of 120 (the
automaton beside an :class:`IdentifierIndex`).

Invariant: ``AutomatonSearch(index).foreign_hits(text, own) == index.foreign_hits(text, own)``
for every text and owner set, and ``AutomatonSearch.from_entries(e)`` answers as
``AutomatonSearch(IdentifierIndex.build(e))``.
"""

from __future__ import annotations

import html
from array import array
from collections.abc import Iterable

import ahocorasick

from sealbill.domain.identifiers import MIN_SEARCHABLE, IdentifierIndex, is_token, is_whole_token

Hit = tuple[str, str, str]  # (kind, value, owner)
Entry = tuple[str, str]  # (kind, owner)

_KINDS = ("reference", "number")  # bit 0 of a packed entry
_OWNERS = ("account:", "invoice:")  # bit 1
_MAX_LENGTH = (1 << 16) - 1  # a token length an array('H') slot holds


def _pack(kind: str, owner: str) -> int | None:
    """One entry as a non-negative integer (id, owner kind, kind), or None (side list)."""
    if kind not in _KINDS:
        return None
    prefix, _, number = owner.partition(":")
    if f"{prefix}:" not in _OWNERS or not (number.isascii() and number.isdigit()):
        return None
    ident = int(number)
    if str(ident) != number or ident >= 1 << 60:
        return None
    return (ident << 2) | (_OWNERS.index(f"{prefix}:") << 1) | _KINDS.index(kind)


def _unpack(packed: int) -> Entry:
    return _KINDS[packed & 1], f"{_OWNERS[(packed >> 1) & 1]}{packed >> 2}"


class AutomatonSearch:
    """A run's identifiers, searchable by automaton; built once per send."""

    def __init__(self, index: IdentifierIndex | None = None) -> None:
        self.phrases: list[tuple[str, str, str]] = []
        # The automaton's value for a token (a C int): k >= 0, the packed entry _packed[k]
        # and the token's length _lengths[k]; -j - 1, the side list's entry j.
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        self._packed = array("q")
        self._lengths = array("H")
        self._side: list[tuple[str, tuple[Entry, ...]]] = []
        self._words = 0
        if index is not None:
            for token, entries in index.by_token.items():
                for kind, owner in entries:
                    self._add(token, kind, owner)
            self.phrases = list(index.phrases)
            self._finish()

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, str]]) -> AutomatonSearch:
        """The same search as ``AutomatonSearch(IdentifierIndex.build(entries))``, without the
        index: ``entries`` (kind, value, owner) are consumed one at a time."""
        search = cls()
        for kind, value, owner in entries:
            if len(value) < MIN_SEARCHABLE or not any(ch.isdigit() for ch in value):
                continue
            if is_token(value):
                search._add(value, kind, owner)
            else:
                search.phrases.append((kind, value, owner))
        search._finish()
        return search

    def _add(self, token: str, kind: str, owner: str) -> None:
        packed = _pack(kind, owner)
        before = self._automaton.get(token, None)
        if before is None:
            self._words += 1
            if packed is not None and len(token) <= _MAX_LENGTH:
                self._automaton.add_word(token, len(self._packed))
                self._packed.append(packed)
                self._lengths.append(len(token))
                return
        entries = () if before is None else self._entries(token, before)
        if (kind, owner) in entries:
            return  # the same entry again (a reference read from the account and an invoice)
        self._side.append((token, (*entries, (kind, owner))))
        self._automaton.add_word(token, -len(self._side))

    def _entries(self, token: str, code: int) -> tuple[Entry, ...]:
        if code < 0:
            return self._side[-code - 1][1]
        return (_unpack(self._packed[code]),)

    def _finish(self) -> None:
        if self._words:
            self._automaton.make_automaton()

    def foreign_hits(self, text: str, own_owners: set[str]) -> set[Hit]:
        """Identifiers found in ``text`` whose owner is not one of ``own_owners``."""
        plain = html.unescape(text)
        hits: set[Hit] = set()
        if self._words:
            for last, code in self._automaton.iter(plain):
                end = last + 1
                if code >= 0:
                    kind, owner = _unpack(self._packed[code])
                    length = self._lengths[code]
                    if owner not in own_owners and is_whole_token(plain, end - length, end):
                        hits.add((kind, plain[end - length:end], owner))
                    continue
                token, entries = self._side[-code - 1]
                foreign = [(k, o) for k, o in entries if o not in own_owners]
                if foreign and is_whole_token(plain, end - len(token), end):
                    hits.update((k, token, o) for k, o in foreign)
        for kind, value, owner in self.phrases:
            if owner not in own_owners and value in plain:
                hits.add((kind, value, owner))
        return hits
