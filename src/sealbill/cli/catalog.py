"""``sealbill metrics …``, ``sealbill plans …`` and ``sealbill apply -f catalog.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealbill.app import apply as apply_use_case
from sealbill.app import catalog
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, usage_error
from sealbill.cli.operate import KeyOption, call, context, output
from sealbill.cli.organizations import read_mapping

metrics_app = typer.Typer(help="Metrics: what usage events measure and how they aggregate.",
                          no_args_is_help=True)
plans_app = typer.Typer(help="Plans and their versioned prices.", no_args_is_help=True)
FileOption = Annotated[Path, typer.Option("--file", "-f", exists=True, dir_okay=False,
                                          help="YAML or JSON file.")]


def register(root: typer.Typer) -> None:
    root.add_typer(metrics_app, name="metrics")
    root.add_typer(plans_app, name="plans")
    root.command("apply")(apply)


@metrics_app.command("create")
def metric_create(
    code: str, org: OrgOption,
    name: Annotated[str, typer.Option(help="Display name.")],
    aggregation: Annotated[str, typer.Option(help="sum, count, max, unique_count, latest or "
                                             "time_weighted_sum.")],
    field: Annotated[str | None, typer.Option(help="Property counted by unique_count.")]
    = None,
    min_value: Annotated[str | None, typer.Option("--min", help="Smallest value accepted at "
                                                  "import (inclusive).")] = None,
    max_value: Annotated[str | None, typer.Option("--max", help="Largest value accepted at "
                                                  "import (inclusive).")] = None,
    decimal_places: Annotated[int | None, typer.Option(help="Decimal places a value may have "
                                                       "(0: integers only; default 12).")]
    = None,
    allows_negative: Annotated[bool, typer.Option(help="Accept values below zero.")] = False,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Create a metric.

    Example: sealbill metrics create api_calls --org acme --name "API calls" --aggregation sum
    --min 0 --max 1000000 --decimal-places 0
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = {"code": code, "name": name, "aggregation": aggregation, "field": field,
            "min_value": min_value, "max_value": max_value, "decimal_places": decimal_places,
            "allows_negative": allows_negative}
    output(call(lambda: catalog.create_metric(engine, actor, org_id, data), as_json), as_json)


@metrics_app.command("list")
def metric_list(org: OrgOption, db: DbOption = None, key: KeyOption = None,
                as_json: JsonOption = False) -> None:
    """List metrics.

    Example: sealbill metrics list --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: catalog.list_metrics(engine, actor, org_id), as_json), as_json)


@plans_app.command("create")
def plan_create(org: OrgOption, file: FileOption, db: DbOption = None, key: KeyOption = None,
                as_json: JsonOption = False) -> None:
    """Create a plan from a file (code, name, interval, currency, trial_days, prices: list of
    {effective_from, charges}); charge models: flat, per_unit, graduated, volume, package,
    percentage.

    Example: sealbill plans create --org acme -f pro.yaml
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = apply_use_case.decimals_as_text(read_mapping(file, as_json))
    output(call(lambda: catalog.create_plan(engine, actor, org_id, data), as_json), as_json)


@plans_app.command("add-price")
def plan_add_price(code: str, org: OrgOption, file: FileOption, db: DbOption = None,
                   key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Add a price version ({effective_from, charges}) effective after the latest one; past
    versions never change.

    Example: sealbill plans add-price pro --org acme -f pro-2027.yaml
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = apply_use_case.decimals_as_text(read_mapping(file, as_json))
    output(call(lambda: catalog.add_price(engine, actor, org_id, code, data), as_json),
           as_json)


@plans_app.command("list")
def plan_list(org: OrgOption, db: DbOption = None, key: KeyOption = None,
              as_json: JsonOption = False) -> None:
    """List plans with their price versions.

    Example: sealbill plans list --org acme --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: catalog.list_plans(engine, actor, org_id), as_json)
    if as_json:
        emit_json(result)
        return
    output([{"code": p["code"], "name": p["name"], "currency": p["currency"],
             "interval": p["interval"], "versions": len(p["prices"]),
             "latest_from": p["prices"][-1]["effective_from"]} for p in result], False)


@plans_app.command("show")
def plan_show(code: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
              as_json: JsonOption = False) -> None:
    """Show a plan (by code or plan_ id) with every price version.

    Example: sealbill plans show pro --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: catalog.show_plan(engine, actor, org_id, code), as_json), as_json)


def apply(
    org: OrgOption,
    file: FileOption,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff; write "
                                          "nothing.")] = False,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Make the catalog match a YAML file (metrics, plans, price versions): idempotent; the
    diff (create / change / unchanged) is printed; --dry-run writes nothing.

    Example: sealbill apply -f catalog.yaml --org acme --dry-run
    """
    engine, actor, org_id = context(db, org, key, as_json)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        usage_error(f"{file}: {exc}", as_json=as_json)
    result = call(lambda: apply_use_case.apply(engine, actor, org_id, text, dry_run=dry_run),
                  as_json)
    if as_json:
        emit_json(result)
        return
    marks = {"create": "+", "change": "~", "unchanged": "="}
    for change in result["changes"]:
        detail = f" ({change['detail']})" if change.get("detail") else ""
        console.print(f"{marks[change['action']]} {change['kind']} {change['code']}: "
                      f"{change['action']}{detail}", markup=False, highlight=False)
    verb = "would apply" if dry_run else "applied"
    console.print(f"{verb}: {result['create']} to create, {result['change']} to change, "
                  f"{result['unchanged']} unchanged", markup=False)
