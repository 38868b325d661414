"""The ``sealbill`` command: one Typer app, one sub-module per pipeline stage.

Each stage module defines its commands on a Typer app and is registered here; nothing
connects to a database or a server at import time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sealbill import logs
from sealbill.cli import (
    accounts,
    balances,
    billing,
    bounces,
    catalog,
    check,
    contacts,
    delivery,
    demo,
    dkim,
    documents,
    incident,
    operators,
    organizations,
    seals,
    sending,
    serve,
    set_aside,
    setup,
    subscriptions,
    taxes,
    usage,
    webhooks,
    workers,
)
from sealbill.cli.arguments import CheckedGroup

app = typer.Typer(
    name="sealbill",
    help=(
        "Billing that sends each invoice to the people entitled to it and nobody else.\n\n"
        "Pipeline: meter -> rate -> invoice -> render -> plan -> guard -> send -> ledger; "
        "incident reads the ledger. Exit codes: 0 ok, 1 failure, 2 bad usage; run "
        "commands also 3 held for approval, 4 halted by the guard / set aside, "
        "5 undelivered."
    ),
    no_args_is_help=True,
    cls=CheckedGroup,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

@app.callback()
def _global_options(
    log_level: Annotated[str, typer.Option(envvar="SEALBILL_LOG_LEVEL",
                                           help="debug, info, warning or error.")] = "warning",
    log_json: Annotated[bool, typer.Option("--log-json", envvar="SEALBILL_LOG_JSON",
                                           help="Logs as one JSON object per line "
                                                "on stderr.")] = False,
    data_dir: Annotated[str | None, typer.Option(
        "--data-dir", envvar="SEALBILL_DATA_DIR",
        help="Folder every stored path is resolved against (default: the SQLite database's "
             "folder).")] = None,
) -> None:
    """Billing that sends each invoice to the people entitled to it and nobody else."""
    logs.configure(log_level, log_json)
    if data_dir:  # read by sealbill.settings, in this process and the workers it starts
        os.environ["SEALBILL_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())


setup.register(app)
billing.register(app)
demo.register(app)
documents.register(app)
# Stage modules added by later work register themselves below (one line each).
incident.register(app)
check.register(app)
dkim.register(app)
delivery.register(app)
sending.register(app)
set_aside.register(app)
taxes.register(app)
organizations.register(app)
catalog.register(app)
accounts.register(app)
contacts.register(delivery.contacts_app)
subscriptions.register(app)
usage.register(app)
operators.register(app)
seals.register(app)
serve.register(app)
webhooks.register(app)
balances.register(accounts.app)
workers.register(app)
bounces.register(app)


def main() -> None:
    from sealbill.keys import KeyMissing

    try:
        app()
    except KeyMissing as exc:  # no key while sealed rows exist: never a traceback, never a new key
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
