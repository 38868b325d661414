"""``sealbill import rates`` (exchange rates for the VAT in euros of invoices in another
currency) and ``sealbill oss return`` (the quarterly OSS figures)."""

from __future__ import annotations

import csv
import io
import sys
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
    org_id_for,
    usage_error,
)
from sealbill.cli.operate import KeyOption, call, context
from sealbill.domain.money import Money, format_plain
from sealbill.outputs.files import OutputError, write_output
from sealbill.pipeline.billing.oss_return import oss_return


def register(app: typer.Typer) -> None:
    from sealbill.cli.setup import import_app

    import_app.command("rates")(import_rates_command)
    app.add_typer(oss_app, name="oss")


def import_rates_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=(
        "CSV or JSON: currency, date (YYYY-MM-DD), rate (units for 1 EUR, as text), "
        "source."))],
    org: OrgOption,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import exchange rates; finalizing an invoice in another currency with VAT takes the
    latest rate on or before its issue date (BT-111, the VAT in euros). Audited; with --key,
    for the roles that edit the catalog.

    Example: sealbill import rates ecb-2026-11.csv --org acme
    """
    from sealbill.app import invoices as app_invoices

    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_invoices.import_rates(engine, actor, org_id, file), as_json)
    if as_json:
        emit_json({"ok": True, **result})
    else:
        console.print(f"{result['imported']} rates stored, {result['duplicates']} already "
                      "present")


oss_app = typer.Typer(help="OSS (EU One-Stop Shop) figures.", no_args_is_help=True)


@oss_app.command("return")
def oss_return_command(
    quarter: Annotated[str, typer.Option(help="Quarter, YYYY-Qn (e.g. 2026-Q4).")],
    org: OrgOption,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Write the return as CSV to this file ('-': stdout).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per member state and rate: taxable amount and VAT (EUR) of the quarter's OSS
    invoices, credit notes deducted.

    Example: sealbill oss return --org acme --quarter 2026-Q4 --csv oss-2026-Q4.csv
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    try:
        with engine.begin() as conn:
            rows = oss_return(conn, org_id, quarter)
    except ValueError as exc:
        usage_error(str(exc), as_json=as_json)
    figures = [{**r, "taxable_eur": format_plain(Money(r["taxable_eur_minor"], "EUR")),
                "vat_eur": format_plain(Money(r["vat_eur_minor"], "EUR"))} for r in rows]
    if as_json:
        emit_json({"ok": True, "quarter": quarter.upper(), "rows": figures})
        return
    if csv_out is not None:
        columns = ["country", "rate", "taxable_eur", "vat_eur", "documents"]
        handle = io.StringIO(newline="")
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(figures)
        if str(csv_out) == "-":
            sys.stdout.write(handle.getvalue())
            return
        try:
            write_output(csv_out, handle.getvalue().encode("utf-8"))
        except OutputError as exc:
            usage_error(f"--csv: {exc}", as_json=as_json)
        return
    for r in figures:
        console.print(f"{r['country']}  {r['rate']:>5} %  taxable {r['taxable_eur']:>12} EUR"
                      f"  VAT {r['vat_eur']:>10} EUR  ({r['documents']} documents)")
    if not figures:
        console.print(f"no OSS sales in {quarter.upper()}")
