"""Find identifiers (account references, invoice numbers) inside rendered text.

The guard must prove that a message carries its own account's identifiers and nobody else's.
Searching each of a run's 10,000 identifiers in each body would cost O(n) per message, so the
text is cut into tokens once and each token is looked up in a dictionary (O(text) per message).
That is :class:`IdentifierIndex`, the reference. The sender searches with an automaton over the
same identifiers instead (:mod:`sealbill.pipeline.delivery.identifier_search`, about ten times
faster),
keeping an occurrence only when :func:`is_whole_token` says it is a token there: the same
answers (a property test compares the two).

Invariants:
- a token is a maximal run of letters, digits and ``_ . - /``, with ``. - /`` trimmed from its
  ends, so ``F2026-000012`` is never found inside ``F2026-0000123``;
- an identifier that is not itself one token (it contains a space, a comma...) is searched as a
  plain substring instead: such identifiers are rare, and a slower exact search beats a miss;
- identifiers shorter than :data:`MIN_SEARCHABLE` characters, or without a digit, are kept out
  of the "someone else's" index: "42" or "EUR" occur in any invoice, so their presence proves
  nothing. The envelope's *own* identifiers are always required, whatever their length.

>>> index = IdentifierIndex.build([("reference", "ACC-0001", "account:1"),
...                                ("number", "F-0000012", "invoice:7")])
>>> sorted(index.foreign_hits("Invoice F-0000012 for ACC-0001", own_owners={"account:1"}))
[('number', 'F-0000012', 'invoice:7')]
>>> contains_identifier("Account ACC-0001.", "ACC-0001")
True
>>> contains_identifier("Account ACC-00012", "ACC-0001")
False
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

MIN_SEARCHABLE = 4
# A maximal run of [\w.\-/] with ". - /" trimmed from its ends is the part of the run from
# its first to its last \w character: that is what this pattern matches, one match per run
# (greedy, and it cannot cross a character outside the run) -- no per-token strip() in Python.
_TOKEN = re.compile(r"\w(?:[\w.\-/]*\w)?")


def tokens(text: str) -> set[str]:
    """The identifier-like tokens of ``text`` (HTML entities decoded first).

    >>> sorted(tokens("Invoice F2026-000012, account ACC-7/."))
    ['ACC-7', 'F2026-000012', 'Invoice', 'account']
    """
    return set(_TOKEN.findall(html.unescape(text)))


def is_token(value: str) -> bool:
    return tokens(value) == {value}


def _is_word(char: str) -> bool:
    """``re.match(r"\\w", char)`` for one character (sre's rule: alphanumeric, or "_")."""
    return char == "_" or char.isalnum()


_TRIMMED = frozenset(".-/")


def is_whole_token(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` — a token-shaped value found there — is one of
    ``tokens(text)`` at that place: its run of ``[\\w.-/]`` characters, trimmed, is exactly it.

    Outside it, up to the run's ends, only trimmed characters (". - /") may follow or precede.

    >>> text = "See F-12. and F-123, G/F-12"
    >>> [is_whole_token(text, i, i + 4) for i in (4, 14, 23)]
    [True, False, False]
    """
    k = start - 1
    while k >= 0 and text[k] in _TRIMMED:
        k -= 1
    if k >= 0 and _is_word(text[k]):
        return False
    k = end
    while k < len(text) and text[k] in _TRIMMED:
        k += 1
    return not (k < len(text) and _is_word(text[k]))


def occurs_as_token(text: str, value: str) -> bool:
    """``value in tokens(text)`` for a token-shaped ``value``, by searching its occurrences
    (no tokenization of the whole text). ``text``: HTML entities already decoded."""
    at = text.find(value)
    while at >= 0:
        if is_whole_token(text, at, at + len(value)):
            return True
        at = text.find(value, at + 1)
    return False


def contains_identifier(text: str, identifier: str) -> bool:
    """Whether ``identifier`` occurs in ``text`` as a whole token (or as a substring when it
    cannot be one token)."""
    return names(html.unescape(text), identifier)


def names(plain_text: str, identifier: str) -> bool:
    """:func:`contains_identifier` for a text whose HTML entities are decoded already."""
    if not identifier:
        return False
    if is_token(identifier):
        return occurs_as_token(plain_text, identifier)
    return identifier in plain_text


class IdentifierSearch(Protocol):
    """What the guard asks of a run's identifiers: which of them, belonging to someone else,
    occur in a text (:meth:`IdentifierIndex.foreign_hits` is the reference)."""

    def foreign_hits(self, text: str, own_owners: set[str]) -> set[tuple[str, str, str]]: ...


@dataclass(frozen=True)
class IdentifierIndex:
    """Identifiers of a run — ``(kind, value, owner)`` — searchable in a text in one pass.

    ``owner`` names who the identifier belongs to, e.g. ``"account:7"`` or ``"invoice:12"``.
    """

    by_token: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    phrases: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str, str]]) -> IdentifierIndex:
        index = cls()
        for kind, value, owner in entries:
            if len(value) < MIN_SEARCHABLE or not any(ch.isdigit() for ch in value):
                continue
            if is_token(value):
                index.by_token.setdefault(value, []).append((kind, owner))
            else:
                index.phrases.append((kind, value, owner))
        return index

    def foreign_hits(self, text: str, own_owners: set[str],
                     text_tokens: set[str] | None = None) -> set[tuple[str, str, str]]:
        """Identifiers found in ``text`` whose owner is not one of ``own_owners``
        (``text_tokens``: ``tokens(text)``, when the caller has it already)."""
        hits: set[tuple[str, str, str]] = set()
        found = tokens(text) if text_tokens is None else text_tokens
        for token in self.by_token.keys() & found:  # one C-level intersection, not a loop
            for kind, owner in self.by_token[token]:
                if owner not in own_owners:
                    hits.add((kind, token, owner))
        if self.phrases:
            plain = html.unescape(text)
            for kind, value, owner in self.phrases:
                if owner not in own_owners and value in plain:
                    hits.add((kind, value, owner))
        return hits
