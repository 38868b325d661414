"""Draft rendering: strict templates, explicit gaps, escaped data, text-only PDF input."""

from __future__ import annotations

import jinja2
import pytest

from sealbill.incident import labels
from sealbill.incident.pdf import inline_spans, markdown_blocks
from sealbill.incident.render import Missing, Safe, bullets, render_source


def test_every_label_exists_in_both_languages() -> None:
    tables = [labels.DATA_CATEGORIES, labels.AUTO_MEASURES, labels.SUBJECT_CATEGORIES,
              labels.NATURES, labels.COMMUNICATION, {"summary": labels.SUMMARY}]
    for table in tables:
        for key, by_lang in table.items():
            assert set(by_lang) == set(labels.LANGUAGES), key
    for key, (_triggers, by_lang) in labels.CONSEQUENCES.items():
        assert set(by_lang) == set(labels.LANGUAGES), key


def test_unknown_categories_are_shown_by_key_never_dropped() -> None:
    assert labels.category_labels(["amount", "shoe_size"], "fr") == [
        "montant de la facture", "shoe_size"]


def test_an_undefined_name_or_a_none_value_fails_the_render() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_source("{{ nowhere }}", {})
    with pytest.raises(ValueError, match="None"):
        render_source("{{ value }}", {"value": None})


def test_missing_values_render_as_an_explicit_marker_with_the_command() -> None:
    text = render_source("DPO: {{ dpo }}", {"dpo": Missing("dpo", "fr", 7)})
    assert text.startswith("DPO: **MANQUANT (à compléter:")
    cause = Missing("cause", "en", 7).markdown()
    assert "sealbill incident update 7 --cause TEXT" in cause
    assert bullets(Missing("consequences", "en", 7), "en").startswith("**MISSING")
    assert bullets([], "fr") == "- aucun"


def test_interpolated_data_cannot_inject_markdown() -> None:
    text = render_source("- **Name:** {{ name }}", {"name": "# Bob **[x](y)**\n- z"})
    assert text == r"- **Name:** \# Bob \*\*\[x\](y)\*\* - z"
    assert bullets(["*a*"], "en") == r"- \*a\*"
    assert isinstance(bullets(["a"], "en"), Safe)


def test_markdown_becomes_blocks_of_text_spans_for_typst() -> None:
    blocks = markdown_blocks("# Title\n\nline one\nline two\n\n- **A:** b\n- c\n## Sub")

    assert [b["kind"] for b in blocks] == ["heading", "para", "list", "heading"]
    assert blocks[1]["spans"][0]["text"] == "line one line two"
    assert [[s["text"] for s in item] for item in blocks[2]["items"]] == [["A:", " b"], ["c"]]
    assert blocks[3]["level"] == 2


def test_escapes_and_code_spans_keep_their_characters() -> None:
    spans = inline_spans(r"\#x `a*b` **MISSING (to fill)** \\")

    assert [(s["text"], s["code"], s["alert"]) for s in spans] == [
        ("#x ", False, False), ("a*b", True, False), (" ", False, False),
        ("MISSING (to fill)", False, True), (" \\", False, False)]
