"""The ``sealbill`` command: one Typer app, one sub-module per pipeline stage.

Each stage module defines its commands on a Typer app and is registered here; nothing
connects to a database or a server at import time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill import logs
from sealbill.cli import balances, billing, delivery, demo, documents, incident, setup, taxes

app = typer.Typer(
    name="sealbill",
    help=(
        "Billing that sends each invoice to the people entitled to it and nobody else.\n\n"
        "Pipeline: meter -> rate -> invoice -> render -> plan -> guard -> send -> ledger; "
        "incident reads the ledger. Exit codes: 0 ok, 1 failure, 2 bad usage."
    ),
    no_args_is_help=True,
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
) -> None:
    """Billing that sends each invoice to the people entitled to it and nobody else."""
    logs.configure(log_level, log_json)


setup.register(app)
billing.register(app)
demo.register(app)
documents.register(app)
# Stage modules added by later work register themselves below (one line each).
incident.register(app)
delivery.register(app)
taxes.register(app)
balances.register(app)


def main() -> None:
    app()
