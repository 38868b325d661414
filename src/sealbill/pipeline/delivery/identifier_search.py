"""The run's identifiers searched in a text in one pass (Aho-Corasick), for the guard.

:class:`~sealbill.domain.identifiers.IdentifierIndex` is the reference: it cuts the text into
tokens with a regular expression and looks each token up — about 0.1 ms per message on the
bodies and the XML, a tenth of the guard. :class:`AutomatonSearch` gives the same answers
(the tests compare them) by running the identifiers' automaton (pyahocorasick, C) over the
text and keeping an occurrence only when it is a whole token there
(:func:`~sealbill.domain.identifiers.is_whole_token`): about ten times faster, because only the
few occurrences of identifiers reach Python. Identifiers that are not one token (phrases) are
searched as substrings, as the reference does.

Invariant: ``AutomatonSearch(index).foreign_hits(text, own) == index.foreign_hits(text, own)``
for every text and owner set.
"""

from __future__ import annotations

import html

import ahocorasick

from sealbill.domain.identifiers import IdentifierIndex, is_whole_token

Hit = tuple[str, str, str]  # (kind, value, owner)


class AutomatonSearch:
    """An :class:`IdentifierIndex`, searchable by automaton; built once per send."""

    def __init__(self, index: IdentifierIndex) -> None:
        self.index = index
        self._automaton: ahocorasick.Automaton | None = None
        if index.by_token:
            automaton = ahocorasick.Automaton()
            for token, entries in index.by_token.items():
                automaton.add_word(token, (token, tuple(entries)))
            automaton.make_automaton()
            self._automaton = automaton

    def foreign_hits(self, text: str, own_owners: set[str]) -> set[Hit]:
        """Identifiers found in ``text`` whose owner is not one of ``own_owners``."""
        plain = html.unescape(text)
        hits: set[Hit] = set()
        if self._automaton is not None:
            for last, (token, entries) in self._automaton.iter(plain):
                foreign = [(kind, owner) for kind, owner in entries if owner not in own_owners]
                if foreign and is_whole_token(plain, last + 1 - len(token), last + 1):
                    hits.update((kind, token, owner) for kind, owner in foreign)
        for kind, value, owner in self.index.phrases:
            if owner not in own_owners and value in plain:
                hits.add((kind, value, owner))
        return hits
