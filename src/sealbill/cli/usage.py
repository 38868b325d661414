"""``sealbill usage record|list|void`` (batch files: ``sealbill import usage``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from sealbill.app import usage
from sealbill.cli.common import DbOption, JsonOption, OrgOption, usage_error
from sealbill.cli.operate import KeyOption, call, context, output

app = typer.Typer(help="Usage events: record one, list, void.", no_args_is_help=True)
COLUMNS = ("id", "event_id", "account", "metric", "timestamp", "value", "voided_at",
           "void_reason")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="usage")


@app.command("record")
def record(
    org: OrgOption,
    event_id: Annotated[str, typer.Option(help="Your unique id for the event.")],
    account: Annotated[str, typer.Option(help="Account reference or acc_ id.")],
    metric: Annotated[str, typer.Option(help="Metric code.")],
    timestamp: Annotated[str, typer.Option(help="ISO 8601 with offset.")],
    value: Annotated[str | None, typer.Option(help="Decimal value.")] = None,
    properties: Annotated[str | None, typer.Option(help="JSON object of strings.")] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Record one usage event (the same id twice is stored once).

    Example: sealbill usage record --org acme --event-id e-1 --account C001
    --metric api_calls --timestamp 2026-10-03T10:00:00Z --value 1200
    """
    engine, actor, org_id = context(db, org, key, as_json)
    try:
        props = json.loads(properties) if properties else {}
    except ValueError as exc:
        usage_error(f"--properties: {exc}", as_json=as_json)
    data: dict[str, Any] = {"event_id": event_id, "account": account, "metric": metric,
                            "timestamp": timestamp, "value": value, "properties": props}
    output(call(lambda: usage.record(engine, actor, org_id, data), as_json), as_json)


def _moment(value: str | None, option: str, as_json: bool) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        usage_error(f"{option}: not an ISO 8601 time: {value!r}", as_json=as_json)
    if moment.tzinfo is None:
        usage_error(f"{option}: give the UTC offset", as_json=as_json)
    return moment


@app.command("list")
def list_events(
    org: OrgOption,
    account: Annotated[str | None, typer.Option()] = None,
    metric: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="From (ISO 8601, inclusive).")] = None,
    until: Annotated[str | None, typer.Option(help="To (ISO 8601, exclusive).")] = None,
    include_voided: Annotated[bool, typer.Option("--voided/--no-voided")] = True,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    cursor: Annotated[str | None, typer.Option()] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """List usage events a page at a time.

    Example: sealbill usage list --org acme --account C001 --metric api_calls --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    start, end = _moment(since, "--since", as_json), _moment(until, "--until", as_json)
    output(call(lambda: usage.list_events(engine, actor, org_id, account=account, metric=metric,
                                          since=start, until=end,
                                          include_voided=include_voided, limit=limit,
                                          cursor=cursor), as_json), as_json, columns=COLUMNS)


@app.command("void")
def void(row: Annotated[str, typer.Argument(help="The event id, or its use_ id.")],
         org: OrgOption, reason: Annotated[str, typer.Option(help="Why (recorded).")],
         db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Void one usage event: kept with who/when/why, excluded from rating from now on.

    Example: sealbill usage void e-1 --org acme --reason "duplicate sent by the client"
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: usage.void(engine, actor, org_id, row, {"reason": reason}), as_json),
           as_json)
