"""Every command of the CLI documents itself: its ``--help`` shows an example of its use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sealbill.cli import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group: walk its commands
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path


COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command_group() -> None:
    groups = {path[0] for path in COMMANDS if len(path) > 1}
    assert {"run", "incident", "contacts", "accounts", "invoices"} <= groups
    assert len(COMMANDS) > 90


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_help_shows_an_example_of_itself(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    example = text.split("Example: ", 1)[-1]  # may start with an environment variable
    assert "Example: " in text and f"sealbill {' '.join(path)}" in example, text
