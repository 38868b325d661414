"""What every command shares: the database option, JSON output, exit codes, progress bars.

Exit codes: 0 success, 1 the work failed (a refused row, a held run, a guard halt), 2 bad
usage (Typer's own code for a wrong option, and ours for a wrong argument value).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy.engine import Engine

from sealbill.store.db import create_engine

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

console = Console(stderr=False)
err_console = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="SEALBILL_DATABASE_URL",
                  help="Database URL (default: sqlite:///sealbill.sqlite in the current folder)."),
]
OrgOption = Annotated[
    str, typer.Option("--org", envvar="SEALBILL_ORG", help="Organization slug.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ActorOption = Annotated[
    str, typer.Option("--by", envvar="SEALBILL_ACTOR", help="Who is doing this (recorded).")
]

T = TypeVar("T")


def link_base_option(value: str | None) -> str | None:
    """Typer callback: a verification link base must be https (http only on loopback)."""
    from sealbill.inputs.urls import link_base_problem

    if value is not None and (problem := link_base_problem(value)):
        raise typer.BadParameter(problem)
    return value


def engine_for(db: str | None) -> Engine:
    """The command's database; the data directory (documents, keys) follows it."""
    from sealbill import settings

    settings.use_database(db)
    return create_engine(db)


def org_id_for(engine: Engine, slug: str, as_json: bool) -> int:
    """The organization's id, or a failure (exit 1) that says it does not exist."""
    from sealbill.store.parties import records as parties

    try:
        with engine.begin() as conn:
            return int(parties.organization_by_slug(conn, slug)["id"])
    except parties.NotFound as exc:
        fail(str(exc), as_json=as_json)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(payload: Any) -> str:
    return json.dumps(payload, default=_default, ensure_ascii=False, indent=2, sort_keys=True)


def emit_json(payload: Any) -> None:
    sys.stdout.write(to_json(payload) + "\n")


def fail(message: str, *, as_json: bool = False, code: int = EXIT_FAILURE,
         details: Any = None) -> NoReturn:
    """Report a failure (on stderr, or as JSON on stdout) and exit with ``code``."""
    if as_json:
        emit_json({"ok": False, "error": message, "details": details})
    else:
        err_console.print(f"[bold red]error:[/] {message}", highlight=False)
        if details:
            for item in details if isinstance(details, list) else [details]:
                err_console.print(f"  - {item}", highlight=False, markup=False)
    raise typer.Exit(code)


def usage_error(message: str, *, as_json: bool = False) -> NoReturn:
    fail(message, as_json=as_json, code=EXIT_USAGE)


@contextmanager
def progress(enabled: bool, description: str, total: int | None) -> Iterator[StageProgress]:
    """A Rich progress bar on stderr (count, rate, elapsed, ETA), or none when disabled
    (``--json``, not a TTY); either way the stage's figures (:meth:`StageProgress.figures`)."""
    tracker = StageProgress()
    if not enabled:
        yield tracker
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        tracker.bind(bar, bar.add_task(description, total=total))
        yield tracker


class RateColumn(ProgressColumn):
    """Items per second over the task's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


class StageProgress:
    """Counts what a stage did and when; advances a Rich bar when one is bound."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: Any = None
        self.done = 0
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()

    def bind(self, bar: Progress, task: Any) -> None:
        self._bar, self._task = bar, task

    def total(self, n: int) -> None:
        """The number of items, once the stage knows it (the ETA needs it)."""
        if self._bar is not None:
            self._bar.update(self._task, total=n)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def figures(self) -> dict[str, float | int]:
        """Wall and CPU seconds since the bar started (CPU: this process and the child
        processes it has reaped), items done, items per second of wall time."""
        seconds = time.perf_counter() - self._wall
        return {"seconds": round(seconds, 3), "cpu_seconds": round(_cpu_seconds() - self._cpu, 3),
                "items": self.done, "per_second": round(self.done / seconds, 1) if seconds else 0}


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def tracked(items: Iterable[T], bar: Any) -> Iterator[T]:
    for item in items:
        yield item
        bar.advance()
