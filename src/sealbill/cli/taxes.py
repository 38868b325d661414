"""``sealbill import rates`` (exchange rates for the VAT in euros of invoices in another
currency)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    fail,
    org_id_for,
)
from sealbill.pipeline.rates_import import RatesRejected, import_rates


def register(app: typer.Typer) -> None:
    from sealbill.cli.setup import import_app

    import_app.command("rates")(import_rates_command)


def import_rates_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=(
        "CSV or JSON: currency, date (YYYY-MM-DD), rate (units for 1 EUR, as text), "
        "source."))],
    org: OrgOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import exchange rates; finalizing an invoice in another currency with VAT takes the
    latest rate on or before its issue date (BT-111, the VAT in euros)."""
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    try:
        result = import_rates(engine, org_id, file)
    except RatesRejected as exc:
        fail(str(exc), as_json=as_json, details=exc.problems)
    if as_json:
        emit_json({"ok": True, **result})
    else:
        console.print(f"{result['imported']} rates stored, {result['duplicates']} already "
                      "present")
