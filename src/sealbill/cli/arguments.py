"""Every command-line argument is checked before any command runs.

No sealbill argument needs a control character, a bidirectional override or a zero-width
character, so any argument holding one is refused (exit code 2, naming the option and the
character) — whatever the command, including those added later. The values of the options
that carry free text recorded or printed by sealbill (reasons, titles, names...) are also put
in NFC and searched for a full card number or IBAN, refused with the option named.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import sqlalchemy.exc
import typer
from typer.core import TyperGroup

from sealbill.inputs.secrets import payment_secret_problem
from sealbill.inputs.text import text_problem

MAX_ARGUMENT = 10_000  # characters; a free-text reason is a paragraph, not a file
TEXT_OPTIONS = frozenset({
    "--reason", "--title", "--description", "--cause", "--detection", "--nature",
    "--consequence", "--measure-taken", "--measure-proposed", "--delay-reason",
    "--communication", "--communication-reason", "--justify", "--by", "--name",
})


def _option_of(args: list[str], index: int) -> str:
    """The option an argument belongs to (``--reason``), or ``argument N``."""
    value = args[index]
    if value.startswith("--"):
        return value.split("=", 1)[0]
    if index and args[index - 1].startswith("-") and "=" not in args[index - 1]:
        return args[index - 1]
    return f"argument {index + 1}"


def checked_arguments(args: list[str]) -> list[str]:
    """``args`` with free-text values in NFC; :class:`typer.BadParameter` for a bad one."""
    out = []
    for index, value in enumerate(args):
        option = _option_of(args, index)
        text = value.split("=", 1)[1] if value.startswith("--") and "=" in value else value
        if len(text) > MAX_ARGUMENT:
            raise typer.BadParameter(f"at most {MAX_ARGUMENT} characters, got {len(text)}",
                                     param_hint=f"'{option}'")
        free_text = option in TEXT_OPTIONS and not (value.startswith("--") and text is value)
        problem = text_problem(text, free_text=free_text)
        if problem is None and free_text:
            problem = payment_secret_problem(text)
            value = unicodedata.normalize("NFC", value)
        if problem:
            raise typer.BadParameter(problem, param_hint=f"'{option}'")
        out.append(value)
    return out


def _unprepared(exc: sqlalchemy.exc.DBAPIError) -> bool:
    text = str(exc.orig)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


class CheckedGroup(TyperGroup):
    """The root command group: checks the arguments of whatever subcommand runs."""

    def invoke(self, ctx: Any) -> Any:
        rest = [*ctx._protected_args, *ctx.args]
        try:
            checked = checked_arguments(rest)
        except typer.BadParameter as exc:
            exc.ctx = ctx
            raise
        ctx._protected_args, ctx.args = checked[:len(ctx._protected_args)], checked[
            len(ctx._protected_args):]
        try:
            return super().invoke(ctx)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError) as exc:
            if not _unprepared(exc):
                raise
            from sealbill.cli.common import usage_error

            usage_error("the database has no sealbill tables: run `sealbill init --db URL` "
                        "first, or check --db / SEALBILL_DATABASE_URL")
