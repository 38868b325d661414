"""Every message of the web templates has a French translation, and pages render in both
languages with amounts and dates formatted by Babel."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from sealbill.web import render

TEMPLATES = Path(render.__file__).parent / "templates"


def test_every_template_message_has_a_french_translation() -> None:
    with open(Path(render.__file__).parent / "locale" / "fr.po", "rb") as handle:
        catalog = read_po(handle, locale="fr")
    messages = {m for _, _, m, _, _ in extract_from_dir(
        str(TEMPLATES), method_map=[("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n"}})}
    assert len(messages) > 100
    missing = sorted(m for m in messages if not (catalog.get(m) and catalog.get(m).string))
    assert missing == []


def test_amounts_and_times_follow_the_readers_language() -> None:
    assert render.money(123456, "EUR", "fr") == "1\u202f234,56\xa0€"
    assert render.money(123456, "EUR", "en") == "€1,234.56"
    assert render.money(1000, "JPY", "en") == "JP¥1,000"  # no minor unit
    at = datetime(2026, 11, 3, 9, 5, tzinfo=UTC)
    assert render.when(at, "en").startswith("2026-11-03 09:05:00")


def test_names_are_escaped_in_every_language() -> None:
    for lang in render.LANGUAGES:
        html = render.environment(lang).from_string("<td>{{ name }}</td>").render(
            name='<script>alert(1)</script>')
        assert "<script>" not in html and "&lt;script&gt;" in html
