"""What the commands built on the application layer share: who is acting, error mapping,
output.

Identity: with ``--key`` (or ``SEALBILL_API_KEY``) a command acts as that key's operator, in
that key's organization and role (``operator:<email>`` in every record); without a key it acts
as ``local:<user>``, an administrator (whoever holds the database holds everything). Approving
a held run always needs a key. Errors: :class:`~sealbill.app.errors.Invalid` and
:class:`~sealbill.app.errors.Conflict` exit 2 (nothing written), the others exit 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from sealbill.app.context import Actor, local_actor
from sealbill.app.errors import AppError, Conflict, Invalid
from sealbill.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    emit_json,
    engine_for,
    err_console,
    fail,
    to_json,
)

T = TypeVar("T")

KeyOption = Annotated[str | None, typer.Option(
    "--key", envvar="SEALBILL_API_KEY", show_default=False,
    help="Act as the operator of this API key (sbk_…), in its organization and role.")]
# ``--by`` is still accepted by the commands that once recorded it, and ignored (with a note)
ByOption = Annotated[str | None, typer.Option(
    "--by", envvar="SEALBILL_ACTOR", hidden=True,
    help="No longer used: the records name the --key's operator, or local:<user>.")]


def by_ignored(by: str | None) -> None:
    """Tell the user a ``--by`` they passed is not recorded (the actor is the key's operator)."""
    if by:
        err_console.print("note: --by is no longer used; recorded as the --key's operator "
                          "or local:<user>", markup=False, highlight=False)


def actor_for(engine: Engine, key: str | None, as_json: bool) -> Actor:
    if not key:
        return local_actor()
    from sealbill.app import operators

    return call(lambda: operators.authenticate(engine, key, "cli")[0], as_json)


def call(fn: Callable[[], T], as_json: bool) -> T:
    """Run a use case; an application error becomes a message and an exit code."""
    try:
        return fn()
    except AppError as exc:
        code = EXIT_USAGE if isinstance(exc, Invalid | Conflict) else EXIT_FAILURE
        fail(exc.message, as_json=as_json, code=code,
             details=[str(p) for p in exc.problems] or None)


def context(db: str | None, org: str, key: str | None, as_json: bool
            ) -> tuple[Engine, Actor, int]:
    """(engine, actor, organization id) for an organization-scoped command."""
    from sealbill.app.common import org_id_by_slug

    engine = engine_for(db)
    actor = actor_for(engine, key, as_json)

    def lookup() -> int:
        with engine.begin() as conn:
            return org_id_by_slug(conn, actor, org)

    return engine, actor, call(lookup, as_json)


def output(result: Any, as_json: bool, *, columns: Sequence[str] | None = None,
           title: str | None = None) -> None:
    """JSON, a table (a list, or a page's ``items``), or ``key: value`` lines."""
    if as_json:
        emit_json(result)
        return
    items = result.get("items") if isinstance(result, dict) and "items" in result else result
    if isinstance(items, list):
        cols = list(columns or (items[0].keys() if items else []))
        table = Table(title=title)
        for col in cols:
            table.add_column(col)
        for item in items:
            table.add_row(*[_cell(item.get(col)) for col in cols])
        console.print(table)
        if isinstance(result, dict) and result.get("next_cursor"):
            console.print(f"more: --cursor {result['next_cursor']}", markup=False)
        return
    for name, value in result.items():
        console.print(f"{name}: {_cell(value)}", markup=False, highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return to_json(value).replace("\n", " ").replace("  ", "")
    return str(value)


def parse_pairs(pairs: list[str] | None, as_json: bool) -> dict[str, str]:
    """``--set name=value`` options as a dict (exit 2 on a malformed one)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--set {pair!r}: expected NAME=VALUE", as_json=as_json, code=EXIT_USAGE)
        out[name.strip()] = value
    return out


def exit_ok() -> None:
    raise typer.Exit(0)
