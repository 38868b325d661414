"""``sealbill documents render``: PDF/Factur-X, XML and mail bodies of finalized invoices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from sealbill import settings
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    engine_for,
    fail,
    org_id_for,
    progress,
    usage_error,
)
from sealbill.outputs.files import OutputError, check_writable, output_folder
from sealbill.pipeline.billing.render import RenderError, render_run, unrendered_ids
from sealbill.store import queries
from sealbill.store.parties import records as parties

RUN_REF = re.compile(r"\d+|\d{4}-\d{2}")  # a run id or a period; anything else: a number
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
    as_json: JsonOption = False,
) -> None:
    """Render every finalized invoice of a run, or one invoice, once: documents are immutable,
    so what is already rendered is left as it is.

    Example: sealbill documents render 2026-11 --org acme --workers 2
    """
    engine = engine_for(db)
    org_id = org_id_for(engine, org, as_json)
    try:
        with engine.begin() as conn:
            if not RUN_REF.fullmatch(ref):
                run_id, invoice_ids = None, [queries.invoice_id_by_number(conn, org_id, ref)]
            else:
                run_id, invoice_ids = int(queries.run_by_ref(conn, org_id, ref)["id"]), None
        total = len(unrendered_ids(engine, org_id, run_id, invoice_ids))
        if out is not None and total:  # the folder named: one line before the progress bar
            check_writable(output_folder(settings.files_dir(out, db_url=db), org) / "probe")
        with progress(not as_json, "rendering", total) as bar:
            count = render_run(engine, org_id, run_id, settings.files_dir(out, db_url=db),
                               invoice_ids=invoice_ids, workers=workers,
                               on_progress=bar.advance)
    except (LookupError, parties.NotFound) as exc:
        fail(str(exc), as_json=as_json)
    except OutputError as exc:
        usage_error(f"--out: {exc}", as_json=as_json)
    except RenderError as exc:
        fail(str(exc), as_json=as_json, details=exc.problems)
    if as_json:
        emit_json({"ok": True, "rendered": count, "files": str(settings.files_dir(out, db_url=db)),
                   "stage": bar.figures()})
    else:
        console.print(f"rendered {count} invoice(s) into {settings.files_dir(out, db_url=db)}")
