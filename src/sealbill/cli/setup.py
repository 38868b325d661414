"""``sealbill init`` and ``sealbill import accounts``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sealbill.cli.common import (
    EXIT_USAGE,
    DbOption,
    JsonOption,
    OrgOption,
    emit_json,
    engine_for,
    fail,
    usage_error,
)
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context
from sealbill.inputs.files import read_text
from sealbill.inputs.problems import InputRejected
from sealbill.pipeline.parties.accounts_import import ImportRejected
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.migrate import upgrade

import_app = typer.Typer(help="Import accounts or usage from files (all or nothing).",
                         no_args_is_help=True)

def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(import_app, name="import")


def init(
    db: DbOption = None,
    organization: Annotated[
        Path | None,
        typer.Option("--organization", help="JSON file describing the seller organization "
                     "(slug, legal_name, address, siren, siret, vat_id, iban, bic, "
                     "invoice_series, default_locale, default_currency, sender_email, ...)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create or upgrade the database schema; optionally create the seller organization.

    Example: sealbill init --db sqlite:///billing.sqlite
    """
    engine = engine_for(db)
    upgrade(engine)
    result: dict[str, Any] = {"ok": True, "database": engine.url.render_as_string()}
    if organization is not None:
        try:
            values = json.loads(read_text(organization))
        except InputRejected as exc:
            usage_error("; ".join(exc.problems), as_json=as_json)
        except (json.JSONDecodeError, RecursionError) as exc:
            usage_error(f"{organization}: not valid JSON ({exc})", as_json=as_json)
        if not isinstance(values, dict):
            usage_error(f"{organization}: expected a JSON object describing the organization",
                        as_json=as_json)
        try:
            with engine.begin() as conn:
                result["organization_id"] = create_org(conn, values)
        except ImportRejected as exc:
            fail(str(exc), as_json=as_json, details=exc.problems, code=EXIT_USAGE)
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"database ready: {result['database']}")
        if "organization_id" in result:
            typer.echo(f"organization created: {values['slug']}")


@import_app.command("accounts")
def import_accounts_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="CSV or JSON file of accounts with contacts.")],
    org: OrgOption,
    db: DbOption = None,
    key: KeyOption = None,
    actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import accounts and their contacts; every problem is listed and nothing is written
    (audited, as `accounts create`; with --key, for the roles that edit accounts).

    Example: sealbill import accounts accounts.csv --org acme
    """
    from sealbill.app import accounts as app_accounts

    by_ignored(actor)
    engine, who, org_id = context(db, org, key, as_json)
    counts = call(lambda: app_accounts.import_file(engine, who, org_id, file), as_json)
    if as_json:
        emit_json({"ok": True, **counts})
    else:
        typer.echo(f"imported {counts['accounts']} accounts, {counts['contacts']} contacts "
                   f"({counts['verified']} verified by an operator)")
