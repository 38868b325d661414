"""The kill switch and the ledger: ``pause``, ``resume``, ``ledger verify`` — each through the
application layer (:mod:`sealbill.app.sending_switch`, :mod:`sealbill.app.ledger`), audited and
role-checked as over the API.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json, fail
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context

ledger_app = typer.Typer(help="The delivery ledger (who received what).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.add_typer(ledger_app, name="ledger")


def pause(org: OrgOption, key: KeyOption = None, db: DbOption = None,
          reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
          by: ByOption = None, as_json: JsonOption = False) -> None:
    """Kill switch: stop all sending of the organization within one message (audited; with
    --key, for the roles that act on runs).

    Example: sealbill pause --org acme --reason "checking a misdelivery report"
    """
    from sealbill.app import sending_switch

    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    call(lambda: sending_switch.pause(engine, actor, org_id, reason), as_json)
    emit_json({"ok": True, "paused": True}) if as_json else console.print("sending paused")


def resume(org: OrgOption, reason: Annotated[str, typer.Option(help="Why (recorded).")],
           key: KeyOption = None, db: DbOption = None,
           run: Annotated[str | None, typer.Option(help="Also release this halted run.")] = None,
           by: ByOption = None, as_json: JsonOption = False) -> None:
    """Lift the kill switch; with --run, release a run the guard halted (audited; with --key,
    for approvers and administrators).

    Example: sealbill resume --org acme --reason "report checked: no exposure"
    """
    from sealbill.app import records, sending_switch

    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    if run:
        out = call(lambda: records.resume_run(engine, actor, org_id, run, reason), as_json)
    else:
        call(lambda: sending_switch.resume(engine, actor, org_id, reason), as_json)
        out = {"paused": False, "run_id": None}
    emit_json({"ok": True, **out}) if as_json else console.print(f"resumed: {out}",
                                                                 markup=False)


@ledger_app.command("verify")
def ledger_verify(org: OrgOption, key: KeyOption = None, db: DbOption = None,
                  as_json: JsonOption = False) -> None:
    """Recompute the hash chain and the rows' seals, compare with the checkpoints kept
    outside the database; report any edited, re-hashed, appended, deleted or cut row.

    Example: sealbill ledger verify --org acme --json
    """
    from sealbill.app import ledger as app_ledger

    engine, actor, org_id = context(db, org, key, as_json)
    report = call(lambda: app_ledger.verify(engine, actor, org_id), as_json)
    if as_json:
        emit_json(report)
    elif report["ok"]:
        console.print(f"ledger intact: {report['rows']} rows")
    else:
        fail(f"ledger damaged: {len(report['problems'])} problems",
             details=[f"seq {p['seq']}: {p['problem']} — {p['detail']}" for p in
                      report["problems"]])
    raise typer.Exit(0 if report["ok"] else 1)
