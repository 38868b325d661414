"""Templates (Jinja2, autoescaped) in English and French, and the formatting of amounts and
dates with Babel.

The French catalog is ``locale/fr.po``, read with Babel and compiled in memory at start; a
message without a translation shows in English. One Jinja environment per language, so a page
is rendered entirely in the language its reader chose.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from sealbill.domain.money import to_major

HERE = Path(__file__).parent
LANGUAGES = ("en", "fr")
LOCALES = {"en": "en_GB", "fr": "fr_FR"}


def _translations(lang: str) -> Translations:
    if lang == "en":
        return Translations()
    with open(HERE / "locale" / f"{lang}.po", "rb") as handle:
        catalog = read_po(handle, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def money(amount_minor: int, currency: str, lang: str = "en") -> str:
    return format_currency(to_major(int(amount_minor), currency), currency,
                           locale=LOCALES[lang])


def when(value: datetime | date | str | None, lang: str = "en") -> str:
    """A date or an aware time (an ISO 8601 string too) in the reader's language."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return format_datetime(value, "yyyy-MM-dd HH:mm:ss zzz", tzinfo=value.tzinfo,
                               locale=LOCALES[lang])
    return format_date(value, "medium", locale=LOCALES[lang])


@cache
def environment(lang: str) -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(_translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    env.filters["money"] = lambda minor, cur: money(minor, cur, lang)
    env.filters["when"] = lambda value: when(value, lang)
    return env


def page(template: str, context: dict[str, Any], lang: str, status: int = 200) -> HTMLResponse:
    lang = lang if lang in LANGUAGES else "en"
    html = environment(lang).get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)
