"""``sealbill organizations create|show|set …`` on the application layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sealbill.app import organizations as orgs
from sealbill.cli.common import DbOption, JsonOption, engine_for, usage_error
from sealbill.cli.operate import KeyOption, actor_for, call, context, output, parse_pairs

app = typer.Typer(help="Seller organizations: create, show, set identity/sending/archive/"
                  "series.", no_args_is_help=True)
set_app = typer.Typer(help="Change one section of an organization's settings.",
                      no_args_is_help=True)
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="NAME=VALUE (repeatable).")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="organizations")
    app.add_typer(set_app, name="set")


def read_mapping(path: Path, as_json: bool) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping (exit 2 otherwise)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        usage_error(f"{path}: {exc}", as_json=as_json)
    if not isinstance(data, dict):
        usage_error(f"{path}: expected a mapping of fields", as_json=as_json)
    return data


@app.command("create")
def create(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON or YAML file of "
                                              "the organization's fields.")] = None,
    fields: SetOption = None, db: DbOption = None, key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a seller organization (a taken slug: exit 2, nothing written).

    Example: sealbill organizations create -f org.yaml --set slug=acme
    (fields: slug, legal_name, address_line1, postcode, city, country, sender_email,
    sender_name, invoice_series, siren, siret, vat_id, legal_info (required in FR), iban, bic,
    archive_email, default_locale, default_currency ...)
    """
    data = read_mapping(file, as_json) if file else {}
    data.update(parse_pairs(fields, as_json))
    engine = engine_for(db)
    from sealbill.store.migrate import upgrade

    upgrade(engine)
    actor = actor_for(engine, key, as_json)
    result = call(lambda: orgs.create(engine, actor, data), as_json)
    output(result, as_json)


@app.command("show")
def show(slug: str, db: DbOption = None, key: KeyOption = None,
         as_json: JsonOption = False) -> None:
    """Show an organization's settings.

    Example: sealbill organizations show acme --json
    """
    engine, actor, org_id = context(db, slug, key, as_json)
    output(call(lambda: orgs.show_id(engine, actor, org_id), as_json), as_json)


def _set(slug: str, section: str, data: dict[str, Any], db: str | None, key: str | None,
         if_match: str | None, as_json: bool) -> None:
    engine, actor, org_id = context(db, slug, key, as_json)
    output(call(lambda: orgs.update(engine, actor, org_id, section, data,
                                    if_match=if_match), as_json), as_json)


IfMatch = Annotated[str | None, typer.Option("--if-match", help="Only if the organization "
                                             "still has this ETag.")]


@set_app.command("identity")
def set_identity(slug: str, fields: SetOption = None, db: DbOption = None,
                 key: KeyOption = None, if_match: IfMatch = None,
                 as_json: JsonOption = False) -> None:
    """Seller identity printed on invoices (legal_name, address, siren, siret, vat_id,
    legal_info, iban, bic, phone, website, dpo_name, dpo_email).

    Example: sealbill organizations set identity acme --set legal_name="Acme SAS"
    """
    _set(slug, "identity", parse_pairs(fields, as_json), db, key, if_match, as_json)


@set_app.command("sending")
def set_sending(slug: str,
                sender_email: Annotated[str | None, typer.Option()] = None,
                sender_name: Annotated[str | None, typer.Option()] = None,
                electronic_address: Annotated[str | None, typer.Option()] = None,
                db: DbOption = None, key: KeyOption = None, if_match: IfMatch = None,
                as_json: JsonOption = False) -> None:
    """Sender address and name of the invoice mails.

    Example: sealbill organizations set sending acme --sender-email billing@acme.example
    """
    data = {k: v for k, v in {"sender_email": sender_email, "sender_name": sender_name,
                              "electronic_address": electronic_address}.items() if v}
    _set(slug, "sending", data, db, key, if_match, as_json)


@set_app.command("archive")
def set_archive(slug: str, email: Annotated[str, typer.Option(
                    help="The archive mailbox (the only extra copy a message may carry).")],
                db: DbOption = None, key: KeyOption = None, if_match: IfMatch = None,
                as_json: JsonOption = False) -> None:
    """The archive mailbox added to every message's SMTP envelope (never to its headers).

    Example: sealbill organizations set archive acme --email archive@acme.example
    """
    _set(slug, "sending", {"archive_email": email}, db, key, if_match, as_json)


@set_app.command("series")
def set_series(slug: str,
               invoice: Annotated[str | None, typer.Option(help="Invoice number prefix.")]
               = None,
               credit_note: Annotated[str | None, typer.Option(help="Credit note prefix.")]
               = None,
               db: DbOption = None, key: KeyOption = None, if_match: IfMatch = None,
               as_json: JsonOption = False) -> None:
    """Numbering series for the next invoices / credit notes (a new prefix starts at 1).

    Example: sealbill organizations set series acme --invoice F2027- --credit-note AV2027-
    """
    data = {k: v for k, v in {"invoice_series": invoice,
                              "credit_note_series": credit_note}.items() if v}
    _set(slug, "series", data, db, key, if_match, as_json)
