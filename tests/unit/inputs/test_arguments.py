"""Every command-line argument is checked before any command runs."""

from __future__ import annotations

import pytest
import typer

from sealbill.cli.arguments import checked_arguments


def test_free_text_options_are_put_in_nfc_and_other_arguments_left_as_given() -> None:
    args = ["void", "F-1", "--reason", "Cafe\u0301", "--db", "sqlite:///Cafe\u0301.sqlite"]
    assert checked_arguments(args) == ["void", "F-1", "--reason", "Caf\u00e9", "--db",
                                       "sqlite:///Cafe\u0301.sqlite"]


@pytest.mark.parametrize(("args", "option"), [
    (["invoices", "list", "--org", "a\u202eb"], "--org"),
    (["void", "F-1", "--reason=x\x1by"], "--reason"),
    (["void", "F\u200b-1"], "argument 2"),
    (["incident", "open", "--title", "IBAN FR7630006000011234567890189"], "--title"),
    (["credit-note", "F-1", "--reason", "x" * 10_001], "--reason"),
])
def test_a_bad_argument_is_refused_naming_its_option(args: list[str], option: str) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        checked_arguments(args)
    assert refused.value.param_hint == f"'{option}'"


def test_newlines_and_tabs_are_allowed_in_free_text_only() -> None:
    assert checked_arguments(["--reason", "line one\nline two"])[1] == "line one\nline two"
    with pytest.raises(typer.BadParameter):
        checked_arguments(["--org", "acme\n"])
