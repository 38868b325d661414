"""Full card numbers (PAN) and IBANs hidden in customer text, in any grouping.

A PAN candidate is 13 to 19 digits written as digit groups separated by single spaces, dashes
or dots (``4111 1111 1111 1111``, ``4111-1111-1111-1111``, ``4111.1111.1111.1111``,
``4111111111111111``); every run of whole consecutive groups of that size is checked with the
Luhn algorithm (python-stdnum). An IBAN candidate starts, at a word boundary, with two letters
and two digits, followed by letter/digit groups with the same separators; every whole-group
prefix of 15 to 34 characters is checked by schwifty (country length and mod-97 checksum).

A random 16-digit number passes Luhn one time in ten: a long phone or order number can be
refused. That is the intended side: sealbill must never print a real card number. One
exception: a French SIRET is 14 Luhn-valid digits by design, so 14 digits written after the
word "SIRET" are an establishment number, not a card.
"""

from __future__ import annotations

import re

from stdnum import luhn

_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ .\-][0-9]+)*")
_IBAN_START = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}")
_ALNUM_GROUPS = re.compile(r"[0-9A-Za-z]+(?:[ .\-][0-9A-Za-z]+)*")
_SEPARATORS = re.compile(r"[ .\-]")
_SIRET_BEFORE = re.compile(r"siret\W{0,4}$", re.IGNORECASE)


def _windows(groups: list[str], low: int, high: int) -> list[str]:
    """Concatenations of consecutive whole groups whose length is within [low, high]."""
    found = []
    for start in range(len(groups)):
        size = 0
        for end in range(start, len(groups)):
            size += len(groups[end])
            if size > high:
                break
            if size >= low:
                found.append("".join(groups[start:end + 1]))
    return found


def has_card_number(text: str) -> bool:
    """Whether ``text`` holds 13–19 digits, in any grouping, that pass the Luhn check."""
    for run in _DIGIT_RUN.finditer(text):
        groups = _SEPARATORS.split(run.group())
        if sum(map(len, groups)) < 13:
            continue
        siret = _SIRET_BEFORE.search(text, 0, run.start()) is not None
        if any(luhn.is_valid(candidate) and not (siret and len(candidate) == 14)
               for candidate in _windows(groups, 13, 19)):
            return True
    return False


def has_iban(text: str) -> bool:
    """Whether ``text`` holds a valid IBAN, in any grouping and case."""
    if len(text) < 15:
        return False
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    for start in _IBAN_START.finditer(text):
        run = _ALNUM_GROUPS.match(text, start.start())
        if run is None:
            continue
        groups = _SEPARATORS.split(run.group())
        size = 0
        for index, group in enumerate(groups):
            size += len(group)
            if size > 34:
                break
            if size >= 15:
                try:
                    IBAN("".join(groups[:index + 1]).upper())
                except SchwiftyException:
                    continue
                return True
    return False


def payment_secret_problem(text: str) -> str | None:
    """Why ``text`` must not be stored (a full card number or IBAN in it), or None."""
    if has_card_number(text):
        return ("holds what looks like a full card number (13–19 digits passing the Luhn "
                "check); sealbill stores only a masked form (brand + last 4)")
    if has_iban(text):
        return "holds what looks like an IBAN; sealbill stores only a masked form (last 4)"
    return None
