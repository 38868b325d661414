"""One rejection type for every boundary, and Pydantic errors as one line per field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

MAX_LISTED = 200  # problems listed in a message; the count is always exact


class InputRejected(ValueError):
    """Bad input: every problem, each naming the file, the record and the field."""

    def __init__(self, problems: list[str], total: int | None = None,
                 what: str = "nothing was imported") -> None:
        count = len(problems) if total is None else total
        super().__init__(f"{count} problem(s); {what}")
        self.problems = problems[:MAX_LISTED] + (
            [f"... and {count - MAX_LISTED} more"] if count > MAX_LISTED else [])


def _field(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "record"


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def message_of(item: Mapping[str, Any]) -> str:
    """What is expected, for one error of a Pydantic validation: the same text whichever door
    (file import, CLI, API) the value came in by."""
    message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if item["type"] == "extra_forbidden":
        return "unknown field (a typo in a column name?)"
    if item["type"] == "missing":
        return "required"
    if "input" in item and item["type"] not in ("value_error",):
        return f"{message}, got {_shorten(item['input'])}"
    return message


def field_problems(error: ValidationError) -> list[tuple[str, str]]:
    """(field, what is expected) for each error of a Pydantic validation."""
    return [(_field(item["loc"]), message_of(item))
            for item in error.errors(include_url=False)]


def label_problems(label: str, error: ValidationError) -> list[str]:
    """``label: field 'name': what is expected`` for each error."""
    return [f"{label}: field {name!r}: {message}" for name, message in field_problems(error)]
