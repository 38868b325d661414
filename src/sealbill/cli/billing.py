"""``sealbill run bill|finalize``, ``sealbill invoices list|show``, ``sealbill credit-note``,
``sealbill import usage``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from sealbill.app import invoices as app_invoices
from sealbill.app import runs as app_runs
from sealbill.app.context import RUNS_WRITE
from sealbill.cli.common import (
    EXIT_USAGE,
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    err_console,
    fail,
    org_id_for,
    progress,
    usage_error,
)
from sealbill.cli.operate import KeyOption, call, context
from sealbill.cli.tables import invoice_table, preview_table, print_invoice
from sealbill.domain.money import Money, format_plain
from sealbill.outputs.files import OutputError, check_writable, write_output
from sealbill.pipeline.billing.usage_import import UsageImportRejected, import_usage_file
from sealbill.store import queries
from sealbill.store.billing.invoices import load_invoice

run_app = typer.Typer(help="Billing runs: bill a period, finalize, then deliver.",
                      no_args_is_help=True)
invoices_app = typer.Typer(help="Read invoices and credit notes.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
    app.add_typer(invoices_app, name="invoices")
    app.command("credit-note")(credit_note)
    app.command("void")(void)
    from sealbill.cli.setup import import_app

    import_app.command("usage")(import_usage)


@run_app.command("bill")
def bill(
    org: OrgOption,
    period: Annotated[str, typer.Option(help="Billing period, YYYY-MM.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Preview lines and totals per "
                                          "account; write nothing.")] = False,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rate the period and create one draft invoice per account (a rerun bills nothing
    twice). An account that cannot be rated is listed with the reason and left unbilled; the
    others are billed, and the exit code is then 1. The run's starter is the key's operator
    (or local:<user>): the four-eyes rule compares it with the approver.

    Example: sealbill run bill --org acme --period 2026-11 --dry-run
    """
    engine, who, org_id = context(db, org, key, as_json)
    call(lambda: who.require(RUNS_WRITE), as_json)
    total = call(lambda: app_runs.account_total(engine, who, org_id, period), as_json)
    with progress(not as_json, "rating", total) as bar:
        result = call(lambda: app_runs.start(engine, who, org_id, period, dry_run=dry_run,
                                             on_progress=bar.advance), as_json)
    if as_json:
        emit_json({**result, "stage": bar.figures()})
        _report_problems(result["problems"], as_json)
        return
    if dry_run:
        console.print(preview_table(result["previews"][:50]))
        console.print(f"dry run: {len(result['previews'])} invoices would be drafted; "
                      "nothing was written")
    else:
        console.print(f"run {result['run_id']} ({period}): {result['drafted']} drafts, "
                      f"{result['already_billed']} already billed, {result['skipped_zero']} "
                      "zero-amount skipped")
    for currency, amount in sorted(result["totals_incl_minor"].items()):
        console.print(f"  total {currency}: {format_plain(Money(amount, currency))}")
    if result["credit_notes_to_deliver"]:
        console.print(f"  credit notes {'to be ' if dry_run else ''}mailed with this run: "
                      + ", ".join(result["credit_notes_to_deliver"]))
    _report_problems(result["problems"], as_json)


def _report_problems(problems: list[str], as_json: bool) -> None:
    """Accounts left unbilled: listed on stderr (the JSON already carries them), exit 1."""
    if not problems:
        return
    if not as_json:
        err_console.print(f"[bold yellow]{len(problems)} account(s) not billed[/] "
                          "(the others were):", highlight=False)
        for problem in problems:
            err_console.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(1)


@run_app.command("list")
def list_runs(org: OrgOption, db: DbOption = None, key: KeyOption = None,
              limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 100,
              cursor: Annotated[str | None, typer.Option(
                  help="next_cursor of the previous page (a period).")] = None,
              as_json: JsonOption = False) -> None:
    """List the organization's billing runs by period with their status and starter, a page
    at a time; when more remain, the next page's cursor is printed.

    Example: sealbill run list --org acme --json
    """
    from sealbill.cli.operate import output

    engine, actor, org_id = context(db, org, key, as_json)
    output(call(lambda: app_runs.page_runs(engine, actor, org_id, limit=limit, cursor=cursor),
                as_json), as_json)


@run_app.command("finalize")
def finalize(
    run: Annotated[str, typer.Argument(help="Run id or period (YYYY-MM).")],
    org: OrgOption,
    issue_date: Annotated[str | None, typer.Option(help="Issue date, YYYY-MM-DD "
                                                    "(default: today).")] = None,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finalize every draft of the run: immutable, with gapless numbers.

    Example: sealbill run finalize 2026-11 --org acme --issue-date 2026-12-01
    """
    engine, who, org_id = context(db, org, key, as_json)
    try:
        day = date.fromisoformat(issue_date) if issue_date else None
    except ValueError:
        usage_error(f"--issue-date: not a date: {issue_date!r}", as_json=as_json)
    total = call(lambda: app_runs.drafts_left(engine, who, org_id, run), as_json)
    with progress(not as_json, "finalizing", total) as bar:
        done = call(lambda: app_runs.finalize(engine, who, org_id, run, day,
                                              on_progress=bar.advance), as_json)
    payload = {"ok": True, "run_id": done["run_id"], "finalized": done["finalized"],
               "stage": bar.figures(), "first_number": done["first_number"],
               "last_number": done["last_number"]}
    if as_json:
        emit_json(payload)
    else:
        console.print(f"finalized {done['finalized']} invoices" + (
            f": {done['first_number']} .. {done['last_number']}" if done["finalized"] else ""))


@invoices_app.command("list")
def list_invoices(
    org: OrgOption,
    run: Annotated[str | None, typer.Option(help="Only this run (id or period).")] = None,
    status: Annotated[str | None, typer.Option(help="draft | finalized | void")] = None,
    kind: Annotated[str | None, typer.Option(help="invoice | credit_note")] = None,
    account: Annotated[str | None, typer.Option(help="Account reference.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]
    = None,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List invoices and credit notes a page at a time; when more remain, the next page's
    cursor is printed (JSON: ``next_cursor``) — nothing is silently left out.

    Example: sealbill invoices list --org acme --status finalized --limit 50 --cursor inv_...
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_invoices.list_invoices(
        engine, actor, org_id, run=run, status=status, kind=kind, account=account,
        limit=limit, cursor=cursor), as_json)
    if as_json:
        emit_json(result)
        return
    console.print(invoice_table(result["items"]))
    if result["next_cursor"]:
        console.print(f"more: --cursor {result['next_cursor']}", markup=False)


@invoices_app.command("download")
def download(
    number: Annotated[str, typer.Argument(help="Invoice or credit note number.")],
    org: OrgOption,
    out: Annotated[Path, typer.Option(help="File or folder to write the PDF to.")],
    kind: Annotated[str, typer.Option(help="pdf or xml.")] = "pdf",
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the rendered PDF (Factur-X) of an invoice to a file, checked against the digest
    recorded at rendering.

    Example: sealbill invoices download F-000001 --org acme --out ./F-000001.pdf
    """
    engine, actor, org_id = context(db, org, key, as_json)
    name, data = call(lambda: app_invoices.download(engine, actor, org_id, number, kind),
                      as_json)
    target = out / name if out.is_dir() else out
    try:
        write_output(target, data)
    except OutputError as exc:
        usage_error(f"--out: {exc}", as_json=as_json)
    if as_json:
        emit_json({"ok": True, "file": str(target), "bytes": len(data)})
    else:
        console.print(f"{name}: {len(data)} bytes written to {target}", markup=False)


@invoices_app.command("show")
def show(
    number: Annotated[str, typer.Argument(help="Invoice or credit note number.")],
    org: OrgOption,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one finalized invoice with its lines, VAT breakdown and totals.

    Example: sealbill invoices show F-000001 --org acme
    """
    engine, actor, org_id = context(db, org, key, as_json)
    data = call(lambda: app_invoices.show(engine, actor, org_id, number), as_json)
    if as_json:
        emit_json(data)
        return
    with engine.begin() as conn:
        print_invoice(console, load_invoice(conn, org_id,
                                            queries.invoice_id_by_number(conn, org_id, number)))


def credit_note(
    invoice: Annotated[str, typer.Argument(help="Number of the invoice to credit.")],
    org: OrgOption,
    reason: Annotated[str, typer.Option(help="Why (printed on the credit note).")],
    amount: Annotated[str | None, typer.Option(help="Partial amount excluding VAT, in major "
                                               "units (default: the whole invoice).")] = None,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a numbered credit note against a finalized invoice (invoices never change).

    Example: sealbill credit-note F-000012 --org acme --reason "goodwill" --amount 5.00
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_invoices.credit_note(engine, actor, org_id, invoice,
                                                   reason=reason, amount=amount), as_json)
    if as_json:
        emit_json({"ok": True, "credit_note": result["number"], "id": result["id"],
                   "delivery": result["delivery"]})
    else:
        console.print(f"credit note {result['number']} issued against {invoice}; "
                      f"{delivery_text(result['delivery'])}")


def void(
    invoice: Annotated[str, typer.Argument(help="Number of the invoice to void.")],
    org: OrgOption,
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Void a finalized invoice: a full credit note is issued; the invoice is kept.

    Example: sealbill void F-000012 --org acme --reason "billed the wrong customer"
    """
    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_invoices.void(engine, actor, org_id, invoice, reason=reason),
                  as_json)
    if as_json:
        emit_json({"ok": True, "voided": invoice, "credit_note": result["number"],
                   "delivery": result["delivery"]})
    else:
        console.print(f"{invoice} voided; credit note {result['number']}; "
                      f"{delivery_text(result['delivery'])}")


def delivery_text(delivery: dict[str, Any]) -> str:
    """How a manual credit note reaches the customer, in one clause."""
    if delivery["period"] is None:
        return "it will be mailed with the next billing run (`sealbill run bill`)"
    return (f"it will be mailed with run {delivery['run_id']} ({delivery['period']}): "
            "render, plan and send that run")


def import_usage(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="CSV or JSONL usage events.")],
    org: OrgOption,
    rejects: Annotated[Path | None, typer.Option(
        help="Write bad rows here and import the good ones (default: all or nothing).")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import usage events; the same event id twice is stored once.

    Example: sealbill import usage usage.jsonl --org acme --rejects rejected.csv
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    try:
        if rejects is not None:
            check_writable(rejects)  # before the progress bar: one line, nothing imported
        with progress(not as_json, "importing", None) as bar:
            result = import_usage_file(engine, org_id, file, rejects=rejects,
                                       on_progress=bar.advance)
    except OutputError as exc:
        usage_error(f"--rejects: {exc}", as_json=as_json)
    except UsageImportRejected as exc:
        fail(f"{file}: {exc}", as_json=as_json, code=EXIT_USAGE,
             details=[f"{file.name}: {problem}" for problem in exc.problems])
    if as_json:
        emit_json({"ok": True, **result})
    else:
        console.print(f"{result['inserted']} events stored, {result['duplicates']} already "
                      f"present, {result['rejected']} rejected")
