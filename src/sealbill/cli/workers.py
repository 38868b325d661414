"""``sealbill worker`` (a queue worker), ``sealbill worker init-schema``, ``sealbill run start``
(enqueue a run for the workers), ``sealbill run progress``, ``sealbill run release`` (approve a
held run and let the workers continue). PostgreSQL only; on SQLite they say so (exit 2)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sealbill.app import distributed
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, usage_error
from sealbill.cli.operate import KeyOption, call, context
from sealbill.store.db import database_url
from sealbill.workers.queue import NeedsPostgres

worker_app = typer.Typer(help="Queue workers for a cycle shared by several machines "
                              "(PostgreSQL).", invoke_without_command=True)


def register(app: typer.Typer) -> None:
    from sealbill.cli.billing import run_app

    app.add_typer(worker_app, name="worker")
    run_app.command("start")(start)
    run_app.command("progress")(progress)
    run_app.command("release")(release)


def _url(db: str | None) -> str:
    url = database_url(db)
    try:
        from sealbill.workers.queue import require_postgres

        require_postgres(url)
    except NeedsPostgres as exc:
        usage_error(str(exc))
    return url


@worker_app.callback()
def worker(
    ctx: typer.Context,
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once by this "
                                             "worker.")] = 1,
    name: Annotated[str | None, typer.Option(help="Worker name (in the jobs' "
                                              "history).")] = None,
) -> None:
    """Run a worker: it applies the queue's schema if missing, then runs jobs until stopped
    (SIGTERM lets the running jobs finish). Start as many as you like, on any machine.

    Example: sealbill worker --db postgresql://sealbill@db/sealbill --concurrency 4
    """
    if ctx.invoked_subcommand is not None:
        return
    from sealbill.workers.run import run_worker

    run_worker(_url(db), concurrency, name=name)


@worker_app.command("init-schema")
def init_schema(db: DbOption = None) -> None:
    """Create the queue's tables (Procrastinate) in the database, if missing.

    Example: sealbill worker init-schema --db postgresql://sealbill@db/sealbill
    """
    from sealbill.workers.run import init_schema as apply

    console.print("queue schema applied" if apply(_url(db)) else "queue schema already there")


def start(org: OrgOption, period: Annotated[str, typer.Option(help="YYYY-MM.")],
          db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Enqueue the period's run for the workers (or resume it if it exists): rating,
    finalization, rendering, plan, canary, sending and ledger verification follow as jobs.

    Example: sealbill run start --org acme --period 2026-11 --db postgresql://...
    """
    _url(db)
    engine, who, org_id = context(db, org, key, as_json)
    _show(call(lambda: distributed.start(engine, who, org_id, period), as_json), as_json)


def progress(org: OrgOption, run: Annotated[str, typer.Option(help="Run id.")],
             db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """How far a run is: invoices, rendered, outbox and queue jobs, by status.

    Example: sealbill run progress --org acme --run 12 --db postgresql://sealbill@db/sealbill
    """
    _url(db)
    engine, who, org_id = context(db, org, key, as_json)
    _show(call(lambda: distributed.progress(engine, who, org_id, run), as_json), as_json)


def release(org: OrgOption, run: Annotated[str, typer.Option(help="Run id.")],
            reason: Annotated[str, typer.Option(help="Why (recorded).")],
            db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Approve a held run (four-eyes) and enqueue the rest of it for the workers.

    Example: sealbill run release --org acme --run 12 --reason "approved" --db postgresql://sealbill@db/sealbill
    """
    _url(db)
    engine, who, org_id = context(db, org, key, as_json)
    _show(call(lambda: distributed.approve(engine, who, org_id, run, reason), as_json),
          as_json)


def queue_lines(queue: dict[str, Any] | None) -> list[str]:
    """The queue's stages and workers as ``run status`` prints them."""
    if not queue:
        return []
    out = ["  queue (jobs done/total per stage):"]
    for s in queue["stages"]:
        extra = "".join(f", {s[k]} {k}" for k in ("waiting", "running", "failed", "retried")
                        if s[k])
        out.append(f"    {s['stage']}: {s['state']}, {s['done']}/{s['total']} done{extra}")
    workers = ", ".join(f"worker {w['worker']} ({w['running']} running, heartbeat "
                        f"{w['heartbeat_seconds_ago']} s ago)" for w in queue["workers"])
    out.append(f"    workers on this run now: {workers or 'none'}")
    return out


def _show(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        console.print(f"{key}: {value}", highlight=False)
