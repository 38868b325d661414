"""Customer text at the boundary: NFC, bounded, no invisible or reordering characters.

Invariants of a value returned by :func:`clean_text`:
- it is in Unicode normalization form NFC, stripped of surrounding white space;
- it holds no control character (Unicode category Cc, also tab and newline unless the field
  is free text), no bidirectional embedding/override/isolate (U+202A–U+202E, U+2066–U+2069),
  no zero-width or invisible formatting character (U+200B–U+200F, U+2060–U+2064, U+FEFF), no
  lone surrogate and no private-use or unassigned code point;
- its length (in code points, after normalization) is at most the field's limit.
These characters let a name print one way and compare another (a bidi override reorders what a
reader sees); refusing them at every entry keeps stored text what it looks like.
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
INVISIBLE = frozenset(chr(c) for c in (*range(0x200B, 0x2010), *range(0x2060, 0x2065), 0xFEFF,
                                       0x00AD, 0x180E))
_FREE_TEXT_CONTROLS = frozenset("\n\t")


class TextProblem(ValueError):
    """Why a text is refused (the caller names the field)."""


def describe(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``."""
    name = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} ({name})"


def text_problem(value: str, *, free_text: bool = False) -> str | None:
    """Why ``value`` holds a character sealbill refuses, or None."""
    for position, char in enumerate(value, start=1):
        if char in BIDI_CONTROLS:
            kind = "a bidirectional override"
        elif char in INVISIBLE:
            kind = "an invisible (zero-width) character"
        else:
            category = unicodedata.category(char)
            if category == "Cc" and not (free_text and char in _FREE_TEXT_CONTROLS):
                kind = "a control character"
            elif category == "Cs":
                kind = "a lone surrogate (not valid Unicode)"
            elif category in ("Co", "Cn"):
                kind = "a private-use or unassigned code point"
            else:
                continue
        return f"{kind} {describe(char)} at character {position}; remove it"
    return None


def clean_text(value: str, *, max_length: int, free_text: bool = False) -> str:
    """``value`` normalized (NFC, stripped), or :class:`TextProblem` saying why not."""
    if len(value) > 4 * max_length + 64:  # refused before scanning a 10 MB value
        raise TextProblem(f"at most {max_length} characters, got {len(value)}")
    problem = text_problem(value, free_text=free_text)
    if problem:
        raise TextProblem(problem)
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > max_length:
        raise TextProblem(f"at most {max_length} characters, got {len(text)}")
    return text
