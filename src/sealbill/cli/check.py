"""``sealbill check data``: what is stored and would be refused at the boundary today."""

from __future__ import annotations

import typer

from sealbill.cli.common import (
    EXIT_FAILURE,
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    org_id_for,
)
from sealbill.pipeline.data_check import check_stored_data

check_app = typer.Typer(help="Check what is already stored.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")


@check_app.command("data")
def check_data(org: OrgOption, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Report stored text and usage that the import checks would refuse today (control,
    bidi or zero-width characters, text not in NFC, card numbers or IBANs, usage values out
    of range). Writes nothing; exit code 1 when there is anything to fix.

    Example: sealbill check data --org acme --json
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    with engine.begin() as conn:
        findings = check_stored_data(conn, org_id)
    if as_json:
        emit_json({"ok": not findings, "count": len(findings),
                   "findings": [f.as_dict() for f in findings]})
    elif not findings:
        console.print("nothing stored would be refused today")
    else:
        console.print(f"{len(findings)} stored value(s) would be refused today:")
        for finding in findings:
            console.print(f"  - {finding.line()}", markup=False, highlight=False)
    if findings:
        raise typer.Exit(EXIT_FAILURE)
