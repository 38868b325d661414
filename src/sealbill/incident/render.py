"""Markdown drafts from Jinja2 templates: strict about the absent, explicit about the missing.

Invariants:
- an undefined name in a template is an error (``StrictUndefined``), and so is a ``None``
  reaching the output: a draft is never silently blank where a value should be;
- a value the notification still lacks is a :class:`Missing`, rendered as a bold
  "MISSING / MANQUANT" line that says how to fill it;
- every interpolated value is Markdown-escaped (customer names and operator text cannot
  inject headings, emphasis or links); only :class:`Safe` text built here passes unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from sealbill.incident import labels

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")

MISSING_WORD = {"en": "MISSING", "fr": "MANQUANT"}
NONE_WORD = {"en": "none", "fr": "aucun"}


class Safe(str):
    """Markdown produced by this module from escaped parts."""


@dataclass(frozen=True)
class Missing:
    """A required field the notification cannot fill yet."""

    key: str
    lang: str
    incident_id: int

    def markdown(self) -> Safe:
        hint = labels.hint(self.key, self.incident_id)
        todo = "to fill" if self.lang == "en" else "à compléter"
        return Safe(f"**{MISSING_WORD[self.lang]} ({todo}: `{hint}`)**")


def escape_md(text: str) -> str:
    r"""Backslash-escape Markdown's special characters; newlines become spaces.

    >>> escape_md("**x** #1 [a](b)")
    '\\*\\*x\\*\\* \\#1 \\[a\\](b)'
    """
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _finalize(value: Any) -> Any:
    if isinstance(value, Missing):
        return value.markdown()
    if isinstance(value, Safe):
        return value
    if value is None:
        raise ValueError("a template printed None: give the value or a Missing marker")
    if isinstance(value, list | tuple | dict):
        raise TypeError("print sequences with bullets(), not directly")
    return escape_md(str(value))


def bullets(values: Iterable[Any] | Missing, lang: str) -> Safe:
    """A Markdown list of escaped items, the Missing marker, or an explicit "none"."""
    if isinstance(values, Missing):
        return values.markdown()
    items = [_finalize(value) for value in values]
    if not items:
        return Safe(f"- {NONE_WORD[lang]}")
    return Safe("\n".join(f"- {item}" for item in items))


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("sealbill.incident", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.globals["bullets"] = bullets
_ENV.tests["missing"] = lambda value: isinstance(value, Missing)


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render ``templates/<template>`` with ``context``; collapse runs of blank lines."""
    text = _ENV.get_template(template).render(**context)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_source(source: str, context: Mapping[str, Any]) -> str:
    """Render template text with the drafts' rules (strict, escaped): for checks and tests."""
    return _ENV.from_string(source).render(**context)
