"""The incident commands that read and report: ``radius``, ``status``, ``register``,
``drafts`` (the ones that act are in :mod:`sealbill.cli.incident`, on the same command group),
each through the application layer (:mod:`sealbill.app.incident_reports`,
:func:`sealbill.app.incidents.drafts`): the --key's role and organization checked as over
the API, the drafts audited.
"""


from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sealbill.app import incident_reports as reports
from sealbill.app import incidents
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    err_console,
)
from sealbill.cli.incident import CsvOption, IdArg, _use_case, app
from sealbill.cli.incident_views import print_radius, print_register, print_status
from sealbill.cli.operate import ByOption, KeyOption, by_ignored
from sealbill.incident.radius_report import radius_csv, radius_to_dict
from sealbill.incident.summary import register_csv, register_entry, status_dict


@app.command("radius")
def radius_command(incident_id: IdArg, org: OrgOption, db: DbOption = None,
                   key: KeyOption = None, as_json: JsonOption = False,
                   as_csv: CsvOption = False) -> None:
    """Who received whose data: exposures judged against the links of the sending time.

    Example: sealbill incident radius 3 --org acme --csv
    """
    radius, check = _use_case(db, org, key, as_json, lambda engine, who, org_id: (
        reports.radius(engine, who, org_id, str(incident_id))))
    if check.problems:
        err_console.print(f"[bold red]warning:[/] the delivery ledger fails its integrity "
                          f"check ({len(check.problems)} problem(s)): this radius may be "
                          "incomplete")
    if as_json:
        emit_json({**radius_to_dict(radius),
                   "ledger": {"rows": check.rows, "ok": check.ok, "problems": check.problems}})
    elif as_csv:
        sys.stdout.write(radius_csv(radius))
    else:
        print_radius(console, radius)


@app.command("status")
def status_command(incident_id: IdArg, org: OrgOption, db: DbOption = None,
                   key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Time left to the 72-hour deadline and what the notification still lacks.

    Example: sealbill incident status 3 --org acme --json
    """
    d = _use_case(db, org, key, as_json, lambda engine, who, org_id: reports.dossier(
        engine, who, org_id, str(incident_id)))
    status = status_dict(d)
    if as_json:
        emit_json(status)
    else:
        print_status(console, status)


@app.command("drafts")
def drafts_command(
    incident_id: IdArg, org: OrgOption,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the drafts into.")],
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also typeset PDFs.")] = True,
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Art. 33 notification, Art. 34 letters, deletion requests, phishing warning (FR, EN).

    Example: sealbill incident drafts 3 --org acme --out drafts/ --pdf
    """
    by_ignored(actor)
    done = _use_case(db, org, key, as_json, lambda engine, who, org_id: incidents.drafts(
        engine, who, org_id, str(incident_id), out=out, pdf=pdf))
    files, missing = done["files"], done["missing_fields"]
    if as_json:
        emit_json({"ok": True, "out": str(out), "files": [f["path"] for f in files],
                   "missing_fields": missing})
        return
    console.print(f"{len(files)} file(s) written to {out} (manifest.json lists them)",
                  markup=False)
    if missing:
        console.print(f"[yellow]{len(missing)} required field(s) marked MISSING in the "
                      f"notification:[/] {', '.join(missing)}")


@app.command("register")
def register_command(org: OrgOption, db: DbOption = None, key: KeyOption = None,
                     as_json: JsonOption = False, as_csv: CsvOption = False) -> None:
    """The Art. 33(5) register: every incident, notified or not.

    Example: sealbill incident register --org acme --csv
    """
    dossiers = _use_case(db, org, key, as_json, lambda engine, who, org_id: reports.register(
        engine, who, org_id))
    entries = [register_entry(d) for d in dossiers]
    if as_json:
        emit_json({"incidents": entries})
    elif as_csv:
        sys.stdout.write(register_csv(entries))
    else:
        print_register(console, entries)
