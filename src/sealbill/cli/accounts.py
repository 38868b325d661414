"""``sealbill accounts create|update|archive|list|show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealbill.app import accounts
from sealbill.cli.common import DbOption, JsonOption, OrgOption
from sealbill.cli.operate import KeyOption, call, context, output, parse_pairs
from sealbill.cli.organizations import SetOption, read_mapping

app = typer.Typer(help="Customer accounts.", no_args_is_help=True)
COLUMNS = ("id", "reference", "name", "country", "currency", "locale", "archived_at")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="accounts")


@app.command("create")
def create(
    reference: str, org: OrgOption,
    name: Annotated[str | None, typer.Option(help="Customer name.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON/YAML fields.")]
    = None,
    fields: SetOption = None, db: DbOption = None, key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account (fields: name, address_line1, postcode, city, country, is_business,
    vat_id, siren, currency, locale, payment_kind, payment_display (masked only),
    electronic_address).

    Example: sealbill accounts create C001 --org acme --name "Client SA"
    --set address_line1="1 rue X" --set postcode=75001 --set city=Paris --set country=FR
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = read_mapping(file, as_json) if file else {}
    data.update(parse_pairs(fields, as_json))
    data["reference"] = reference
    if name:
        data["name"] = name
    output(call(lambda: accounts.create(engine, actor, org_id, data), as_json), as_json)


@app.command("update")
def update(
    account: str, org: OrgOption, fields: SetOption = None,
    if_match: Annotated[str | None, typer.Option("--if-match")] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """Change fields of an account (issued invoices keep the buyer as it was).

    Example: sealbill accounts update C001 --org acme --set city=Lyon --set postcode=69001
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = parse_pairs(fields, as_json)
    output(call(lambda: accounts.update(engine, actor, org_id, account, data,
                                        if_match=if_match), as_json), as_json)


@app.command("archive")
def archive(account: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
            as_json: JsonOption = False) -> None:
    """Archive an account: its subscriptions end with the current period; kept with its
    history.

    Example: sealbill accounts archive C001 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: accounts.archive(engine, actor, org_id, account), as_json), as_json)


@app.command("show")
def show(account: str, org: OrgOption, db: DbOption = None, key: KeyOption = None,
         as_json: JsonOption = False) -> None:
    """Show an account (by reference or acc_ id).

    Example: sealbill accounts show C001 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: accounts.show(engine, actor, org_id, account), as_json), as_json)


@app.command("list")
def list_accounts(
    org: OrgOption,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]
    = None,
    archived: Annotated[bool | None, typer.Option("--archived/--active")] = None,
    db: DbOption = None, key: KeyOption = None, as_json: JsonOption = False,
) -> None:
    """List accounts a page at a time (the next page's cursor is printed).

    Example: sealbill accounts list --org acme --limit 20 --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: accounts.list_accounts(engine, actor, org_id, limit=limit,
                                               cursor=cursor, archived=archived), as_json),
           as_json, columns=COLUMNS)
