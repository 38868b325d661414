"""``run set-aside`` and ``run retry``, and the person-readable held/halted report.

Exit codes of the run commands (``run plan``, ``run send``, ``run status``): 0 every message
delivered (``run plan``: the plan may proceed); 1 the command failed; 2 bad usage; 3 the plan
is held awaiting approval; 4 the guard halted the run or messages are set aside; 5 messages are
left undelivered (queued, retrying, failed, or with no recipient).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from sealbill.app import message_actions
from sealbill.cli.billing import run_app
from sealbill.cli.common import DbOption, JsonOption, OrgOption, console, emit_json
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context
from sealbill.pipeline.delivery import set_aside as set_asides

RunArg = Annotated[str, typer.Argument(help="Run id or period (YYYY-MM).")]
InvoiceOption = Annotated[str, typer.Option("--invoice", help="The invoice number.")]
EXIT_HELP = "; ".join(f"{code} {text}" for code, text in set_asides.EXIT_CODES.items())


def register(app: typer.Typer) -> None:
    """Commands live on the ``run`` sub-app (registered by :mod:`sealbill.cli.billing`)."""


@run_app.command("set-aside", epilog=f"Exit codes: {EXIT_HELP}.")
def set_aside_command(run: RunArg, org: OrgOption, invoice: InvoiceOption,
                      reason: Annotated[str, typer.Option(help="Why (recorded).")],
                      key: KeyOption = None, by: ByOption = None, db: DbOption = None,
                      as_json: JsonOption = False) -> None:
    """Exclude one message from the run (or confirm the guard's set-aside of it), recorded;
    once the guard's set-asides are confirmed, `run send` sends the rest. With --key, for
    approvers and administrators (the same use case as the console).

    Example: sealbill run set-aside 2026-11 --org acme --invoice F-000042 --reason "buyer disputes
    the address"
    """
    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    done = call(lambda: message_actions.set_aside(engine, actor, org_id, run, invoice, reason),
                as_json)
    if as_json:
        emit_json({"ok": True, **done})
        return
    console.print(f"{invoice} set aside by {actor.name}" + (
        f"; run {run} released: `sealbill run send {run}` sends the rest"
        if done["run_released"] else ""), markup=False, soft_wrap=True)


@run_app.command("retry", epilog=f"Exit codes: {EXIT_HELP}.")
def retry_command(run: RunArg, org: OrgOption,
                  reason: Annotated[str, typer.Option(help="Why (recorded; 3 characters or "
                                                      "more).")],
                  invoice: Annotated[str | None, typer.Option(
                      "--invoice", help="The invoice number (default: every failed message "
                      "of the run).")] = None,
                  key: KeyOption = None, by: ByOption = None, db: DbOption = None,
                  as_json: JsonOption = False) -> None:
    """Queue again a set-aside message (--invoice), or failed messages after a fix (retries
    exhausted, or refused by the server): the next `run send` checks each with the whole
    guard, on the data as it is then, and sends it only to its recipients not yet delivered
    (same Message-ID). A sent message (--invoice) whose bounced contact was corrected since
    (new address verified, bounce cleared) goes to that corrected address only. The same use
    case as `POST /v1/runs/{id}/retry`; with --key, for approvers and administrators.

    Example: sealbill run retry 2026-11 --org acme --invoice F-000042 --reason "mailbox fixed"
    """
    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    if invoice is None:
        done = call(lambda: message_actions.retry_failed(engine, actor, org_id, run, reason),
                    as_json)
    else:
        done = call(lambda: message_actions.retry(engine, actor, org_id, run, invoice, reason),
                    as_json)
    if as_json:
        emit_json({"ok": True, **done})
        return
    for skipped in done["skipped"]:
        console.print(f"{skipped['invoice']} not queued: {skipped['reason']} (correct the "
                      f"contacts, then `sealbill run plan {run} --replan`)", markup=False)
    if not done["queued"]:
        console.print("nothing to retry", markup=False)
        return
    for old, new in done.get("corrected", []):
        console.print(f"{done['invoice']}: {old} -> {new} (only {new} gets it; the others "
                      "already have it)", markup=False)
    console.print(f"{', '.join(done['queued'])} queued again; `sealbill run send {run}` checks "
                  "and sends", markup=False)


def report_lines(status: Mapping[str, Any], run: str) -> list[str]:
    """The held/halted report a person reads: per account before -> after (the plan's
    lines), per set-aside message what the guard saw, why it matters and what to do."""
    out: list[str] = []
    plan = status.get("plan") or {}
    if status["status"] == "held":
        out.append("HELD: the plan differs from the previous cycle beyond the policy.")
        out += [f"  {line}" for line in plan.get("report_lines", [])]
        out.append(f"  what to do: read each change above; if every one is expected, another "
                   f"person runs `sealbill run approve {run} --reason TEXT --key KEY` (it "
                   "approves exactly these differences); otherwise fix the contacts and "
                   f"`sealbill run plan {run} --replan`.")
    for item in status.get("set_aside", []):
        out.append(f"SET ASIDE {item['invoice']} (account {item['account']}) by {item['by']}: "
                   f"to {', '.join(item['recipients']) or '-'}")
        for v in item["violations"]:
            out.append(f"  [{v['rule']}] {v['message']}: {v['evidence']}")
        if item["by"] == "guard":
            out.append("  why it matters: the guard found this message would go where the "
                       "evidence does not entitle it to; it was not sent.")
            out.append(f"  what to do: `sealbill run set-aside {run} --invoice {item['invoice']}"
                       " --reason TEXT` (recorded) then `sealbill run send` sends the rest; "
                       "once the cause is fixed, `sealbill run retry "
                       f"{run} --invoice {item['invoice']}` checks it again.")
        else:
            out.append(f"  set aside: {item['reason']}; `sealbill run retry {run} --invoice "
                       f"{item['invoice']}` re-queues it for a fresh guard check.")
    return out
