"""``sealbill subscriptions create|change-plan|cancel|list|show``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from sealbill.app import subscriptions
from sealbill.cli.common import DbOption, JsonOption, OrgOption, usage_error
from sealbill.cli.operate import KeyOption, call, context, output

app = typer.Typer(help="Subscriptions of accounts to plans.", no_args_is_help=True)
COLUMNS = ("id", "external_id", "account", "plan", "started_on", "trial_ends_on", "ends_on")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="subscriptions")


def _day(value: str | None, option: str, as_json: bool) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        usage_error(f"{option}: not a date (YYYY-MM-DD): {value!r}", as_json=as_json)


@app.command("create")
def create(
    org: OrgOption,
    account: Annotated[str, typer.Option(help="Account reference or acc_ id.")],
    plan: Annotated[str, typer.Option(help="Plan code.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    external_id: Annotated[str | None, typer.Option(help="Your id for it.")] = None,
    trial_days: Annotated[int | None, typer.Option(help="Override the plan's trial.")] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Subscribe an account to a plan.

    Example: sealbill subscriptions create --org acme --account C001 --plan pro
    --start 2026-10-01
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data: dict[str, Any] = {"account": account, "plan": plan, "started_on": start,
                            "external_id": external_id, "trial_days": trial_days}
    output(call(lambda: subscriptions.create(engine, actor, org_id, data), as_json), as_json)


IfMatch = Annotated[str | None, typer.Option(
    "--if-match", help="Only if the subscription's ETag is still this (GET "
    "/v1/subscriptions/{id}); exit 1 if someone changed it since.")]


@app.command("change-plan")
def change_plan(
    subscription: str, org: OrgOption,
    plan: Annotated[str, typer.Option(help="New plan code.")],
    on: Annotated[str | None, typer.Option(help="Day of the change (default today).")] = None,
    at_period_end: Annotated[bool, typer.Option("--at-period-end/--now")] = False,
    db: DbOption = None, key: KeyOption = None, if_match: IfMatch = None,
    as_json: JsonOption = False,
) -> None:
    """Change plan now (prorated by days on the next invoice) or at the end of the period.

    Example: sealbill subscriptions change-plan sub-1 --org acme --plan pro --on 2026-11-15
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = {"plan": plan, "on": _day(on, "--on", as_json), "at_period_end": at_period_end}
    output(call(lambda: subscriptions.change_plan(engine, actor, org_id, subscription, data,
                                                  if_match=if_match), as_json), as_json)


@app.command("cancel")
def cancel(
    subscription: str, org: OrgOption,
    on: Annotated[str | None, typer.Option(help="Day (default today).")] = None,
    at_period_end: Annotated[bool, typer.Option("--at-period-end/--now")] = True,
    db: DbOption = None, key: KeyOption = None, if_match: IfMatch = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel at the end of the period (default) or now (unused days credited).

    Example: sealbill subscriptions cancel sub-1 --org acme --now
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = {"on": _day(on, "--on", as_json), "at_period_end": at_period_end}
    output(call(lambda: subscriptions.cancel(engine, actor, org_id, subscription, data,
                                             if_match=if_match), as_json), as_json)


@app.command("list")
def list_subscriptions(org: OrgOption,
                       account: Annotated[str | None, typer.Option()] = None,
                       limit: Annotated[int, typer.Option(min=1, max=1000,
                                                          help="Rows per page.")] = 100,
                       cursor: Annotated[str | None, typer.Option(
                           help="next_cursor of the previous page.")] = None,
                       db: DbOption = None, key: KeyOption = None,
                       as_json: JsonOption = False) -> None:
    """List subscriptions (of one account with --account) in creation order, a page at a
    time; when more remain, the next page's cursor is printed (JSON: ``next_cursor``).

    Example: sealbill subscriptions list --org acme --account C001 --limit 50
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: subscriptions.page_subscriptions(
        engine, actor, org_id, account_ref=account, limit=limit, cursor=cursor), as_json),
        as_json, columns=COLUMNS)


@app.command("show")
def show(subscription: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
         as_json: JsonOption = False) -> None:
    """Show a subscription with its phase history.

    Example: sealbill subscriptions show sub-1 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: subscriptions.show(engine, actor, org_id, subscription), as_json),
           as_json)
