"""``sealbill documents render``: PDF/Factur-X, XML and mail bodies of finalized invoices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealbill import settings
from sealbill.app import runs as app_runs
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    progress,
    usage_error,
)
from sealbill.cli.operate import KeyOption, call, context
from sealbill.outputs.files import OutputError, check_writable, output_folder

documents_app = typer.Typer(help="Invoice documents: PDF/A-3 Factur-X, XML, mail bodies.",
                            no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")


@documents_app.command("render")
def render(
    ref: Annotated[str, typer.Argument(help="A run (id or YYYY-MM) or an invoice number.")],
    org: OrgOption,
    out: Annotated[Path | None, typer.Option(help="File store folder (default: "
                                             "SEALBILL_FILES_DIR, relative to the data "
                                             "directory, or <data dir>/files).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per "
                                                "core).")] = None,
    db: DbOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Render every finalized invoice of a run, or one invoice, once: documents are immutable,
    so what is already rendered is left as it is.

    Example: sealbill documents render 2026-11 --org acme --workers 2
    """
    engine, actor, org_id = context(db, org, key, as_json)
    folder = settings.files_dir(out, db_url=db)
    total = call(lambda: app_runs.to_render(engine, actor, org_id, ref), as_json)
    try:
        if out is not None and total:  # the folder named: one line before the progress bar
            check_writable(output_folder(folder, org) / "probe")
    except OutputError as exc:
        usage_error(f"--out: {exc}", as_json=as_json)
    with progress(not as_json, "rendering", total) as bar:
        count = call(lambda: app_runs.render(engine, actor, org_id, ref, workers=workers,
                                             files_dir=folder, on_progress=bar.advance),
                     as_json)["rendered"]
    if as_json:
        emit_json({"ok": True, "rendered": count, "files": str(folder),
                   "stage": bar.figures()})
    else:
        console.print(f"rendered {count} invoice(s) into {folder}")
