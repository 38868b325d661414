"""``sealbill webhooks add|messages|deliver`` (Standard Webhooks, from an outbox)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from sealbill.app import webhooks
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, engine_for
from sealbill.cli.operate import KeyOption, call, context, output

app = typer.Typer(help="Webhooks: signed event notifications.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="webhooks")


@app.command("add")
def add(url: str, org: OrgOption,
        event: Annotated[list[str], typer.Option("--event", help="An event type, or *.")],
        allow_loopback: Annotated[bool, typer.Option(
            "--allow-loopback", help="Development only: allow http to 127.0.0.1/::1.")]
        = False,
        db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Subscribe an endpoint; prints the signing secret once.

    Example: sealbill webhooks add https://hooks.acme.example/sealbill --org acme
    --event invoice.delivered --event run.held
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: webhooks.add_endpoint(engine, actor, org_id, url, event,
                                              allow_loopback=allow_loopback), as_json),
           as_json)


@app.command("messages")
def messages(org: OrgOption, db: DbOption = None, key: KeyOption = None,
             limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 100,
             cursor: Annotated[str | None, typer.Option(
                 help="next_cursor of the previous page.")] = None,
             as_json: JsonOption = False) -> None:
    """The outbox, oldest first, a page at a time: each message with its attempts and
    outcome; when more remain, the next page's cursor is printed.

    Example: sealbill webhooks messages --org acme --limit 50
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: webhooks.messages(engine, actor, org_id, limit=limit, cursor=cursor),
                as_json), as_json)


@app.command("deliver")
def deliver(db: DbOption = None,
            loop: Annotated[float | None, typer.Option(
                help="Keep delivering, pausing this many seconds between passes.")] = None,
            as_json: JsonOption = False) -> None:
    """Send the due messages of every organization (retries with backoff).

    Example: sealbill webhooks deliver --loop 5
    """
    engine = engine_for(db)
    while True:
        counts = webhooks.deliver(engine)
        if as_json:
            emit_json(counts)
        else:
            console.print(f"delivered {counts['delivered']}, retrying {counts['retrying']}, "
                          f"failed {counts['failed']}", markup=False)
        if loop is None:
            return
        time.sleep(loop)
