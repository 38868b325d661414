"""``sealbill demo``: a whole billing cycle on a fresh embedded database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from sealbill.cli.common import JsonOption, emit_json, err_console, usage_error
from sealbill.demo.cycle import DemoFolderError, run_demo
from sealbill.demo.delivery import deliver_to_sink
from sealbill.mail.config import smtp_config


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the demo database, documents and "
                                          "mails: new, empty, or an earlier demo's (only "
                                          "what the demo created is removed).")]
    = Path("var/demo"),
    accounts: Annotated[int, typer.Option(min=1, help="How many customer accounts.")] = 1000,
    period: Annotated[str, typer.Option(help="Billed period, YYYY-MM.")] = "2026-11",
    smtp: Annotated[str | None, typer.Option(
        help="Deliver to this relay (HOST:PORT) instead of the local sink; security, user "
             "and password from SEALBILL_SMTP_* (see the README).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Seed an organization with customers, plans and a month of usage, then bill, finalize,
    render and deliver it to a local SMTP sink. Prints where to look.

    Example: sealbill demo --workdir var/demo --accounts 200
    """
    say = (lambda _: None) if as_json else err_console.print
    relay = None
    if smtp:
        host, _, port = smtp.rpartition(":")
        if not host or not port.isdigit():
            usage_error(f"--smtp: expected HOST:PORT, got {smtp!r}", as_json=as_json)
        relay = replace(smtp_config(), host=host, port=int(port))
    try:
        report = run_demo(workdir, accounts=accounts, period=period, say=say,
                          deliver=deliver_to_sink(workdir / "maildir", say, relay=relay))
    except DemoFolderError as exc:
        usage_error(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, "workdir": str(report.workdir),
                   "database": report.database_url, "stages": report.stages})
        return
    typer.echo(f"\ndatabase:  {report.database_url}")
    typer.echo(f"documents: {report.workdir / 'files'}")
    typer.echo(f"mails:     {report.workdir / 'maildir'} (one file per message in new/)")
    typer.echo(f"keys:      {report.workdir / 'files'} (sealing key and checkpoints, found "
               "from the database's folder by every command with this --db)")
    typer.echo(f"try:       sealbill --help; sealbill invoices list --org {report.org_slug} "
               f"--db {report.database_url}")
