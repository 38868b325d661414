"""Reusable Pydantic field types for customer-supplied values.

Each type checks, in order: the JSON type (text is text — a number where text is expected is
refused, never converted), the characters and length (:mod:`sealbill.inputs.text`), then that
no full card number or IBAN hides in it (:mod:`sealbill.inputs.secrets`). The error says what
is expected; :mod:`sealbill.inputs.problems` puts the field name in front.
"""

from __future__ import annotations

from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BeforeValidator

from sealbill.inputs.secrets import payment_secret_problem
from sealbill.inputs.text import clean_text

_TRUE = frozenset({"true", "yes", "y", "1", "oui"})
_FALSE = frozenset({"false", "no", "n", "0", "non"})


def checked(max_length: int, *, required: bool = True, free_text: bool = False,
            secrets: bool = True) -> Any:
    """The validator of customer text of at most ``max_length`` characters (and, unless
    ``secrets`` is False, holding no full card number or IBAN)."""
    def check(value: str) -> str:
        text = clean_text(value, max_length=max_length, free_text=free_text)
        if required and not text:
            raise ValueError("required, must not be empty")
        if secrets and (problem := payment_secret_problem(text)):
            raise ValueError(problem)
        return text
    return AfterValidator(check)


def _text_only(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__} {value!r:.40}")
    return value


def _empty_if_none(value: Any) -> Any:
    return "" if value is None else _text_only(value)


TEXT_ONLY = BeforeValidator(_text_only)
"""Text is text: a number or a list where text is expected is refused, never converted."""
MAYBE_EMPTY = BeforeValidator(_empty_if_none)
"""An absent optional text (``null``) is the empty text."""


def _country(value: Any) -> str:
    code = _text_only(value)
    code = (code or "").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"expected an ISO 3166-1 alpha-2 country code (FR, DE, US...), "
                         f"got {value!r:.40}")
    return code


Country = Annotated[str, BeforeValidator(_country)]


def _optional_country(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) \
        else _country(value)


OptionalCountry = Annotated[str | None, BeforeValidator(_optional_country)]
"""A country code that may be absent (empty or null): place-of-supply evidence."""


def _yes_no(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"expected true or false (yes/no, 1/0), got {value!r:.40}")


YesNo = Annotated[bool | None, BeforeValidator(_yes_no)]


def _yes_no_false(value: Any) -> bool:
    return bool(_yes_no(value))


YesNoFalse = Annotated[bool, BeforeValidator(_yes_no_false)]
"""A flag whose absence (empty or null) is False."""
