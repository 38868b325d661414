"""Delivery commands: ``run plan|approve|send|status``, ``contacts verify|confirm``,
``smtp-sink`` (the kill switch and the ledger: :mod:`sealbill.cli.sending`).

Exit codes: 0 done (every message delivered); 1 failure (an error, a broken ledger, a refused
code); 2 bad usage; run commands also 3 held awaiting approval, 4 halted by the guard or
messages set aside, 5 messages left undelivered (:mod:`sealbill.cli.set_aside`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sealbill.app import runs as app_runs
from sealbill.cli.billing import run_app
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    link_base_option,
    progress,
    usage_error,
)
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context
from sealbill.cli.set_aside import EXIT_HELP, report_lines
from sealbill.cli.workers import queue_lines
from sealbill.domain.delivery_plan import HOLD
from sealbill.pipeline.delivery import set_aside as set_asides
from sealbill.pipeline.delivery.send import SendOptions
from sealbill.pipeline.delivery.send_settings import MAX_BATCH

contacts_app = typer.Typer(help="Verify billing contacts' addresses.", no_args_is_help=True)
RunArg = Annotated[str, typer.Argument(help="Run id or period (YYYY-MM).")]


def register(app: typer.Typer) -> None:
    app.command("smtp-sink")(smtp_sink)
    app.add_typer(contacts_app, name="contacts")


@run_app.command("plan", epilog=f"Exit codes: {EXIT_HELP}.")
def plan(run: RunArg, org: OrgOption, by: ByOption = None, key: KeyOption = None,
         db: DbOption = None,
         replan: Annotated[bool, typer.Option(help="Rebuild the envelopes not sent yet.")] = False,
         policy: Annotated[Path | None, typer.Option(help="JSON file overriding the "
                                                     "delivery policy thresholds.")] = None,
         canary_share: Annotated[float, typer.Option(help="Canary slice (0.01 = 1 %).")] = 0.01,
         as_json: JsonOption = False) -> None:
    """Build (or show) the delivery plan and its verdict against the previous cycle.

    Example: sealbill run plan 2026-11 --org acme --json
    """
    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    try:
        rules = json.loads(policy.read_text()) if policy else None
    except (OSError, ValueError) as exc:
        usage_error(f"--policy: {exc}", as_json=as_json)
    if rules is not None and not isinstance(rules, dict):
        usage_error("--policy: a JSON object of thresholds", as_json=as_json)
    with progress(not as_json, "planning", None) as bar:
        call(lambda: app_runs.plan(engine, actor, org_id, run, replan=replan, policy=rules,
                                   canary_share=canary_share, on_progress=bar.advance,
                                   on_total=bar.total), as_json)
    summary = call(lambda: app_runs.plan_report(engine, actor, org_id, run), as_json)
    held = summary["verdict"] == HOLD and not summary["approved_by"]
    code = set_asides.EXIT_HELD if held else 0
    if as_json:
        emit_json({"ok": not held, "exit_code": code, **summary, "stage": bar.figures()})
    else:
        console.print(summary["signing"], highlight=False, markup=False)
        for line in summary["report"].get("lines", []):
            console.print(line, highlight=False, markup=False)
        console.print(f"{len(summary['envelopes'])} envelopes; canary: "
                      f"{sum(1 for e in summary['envelopes'] if e['canary'])}; archive copy "
                      f"on each: {summary['archive'] or 'none'}", markup=False)
        credits = [e["invoice"] for e in summary["envelopes"] if e["kind"] == "credit_note"]
        if credits:
            console.print(f"credit notes among them: {', '.join(credits[:20])}"
                          + (f" (+{len(credits) - 20})" if len(credits) > 20 else ""),
                          markup=False)
        if held:
            console.print("held: read each change above; if every one is expected, "
                          f"`sealbill run approve {run} --reason TEXT --key KEY` (an operator "
                          "other than the one who started the run) approves exactly these "
                          "differences", markup=False)
    raise typer.Exit(code)


@run_app.command("approve")
def approve(run: RunArg, org: OrgOption,
            reason: Annotated[str, typer.Option(help="Why (recorded).")],
            key: KeyOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Let a held plan proceed: by an operator authenticated by an API key (--key or
    SEALBILL_API_KEY), never the one who started the run.

    Example: SEALBILL_API_KEY=sbk_... sealbill run approve 2026-11 --org acme --reason "checked"
    """
    from sealbill.app import runs as app_runs

    engine, actor, org_id = context(db, org, key, as_json)
    result = call(lambda: app_runs.approve(engine, actor, org_id, run, reason), as_json)
    if as_json:
        emit_json({"ok": True, "run_id": result["run_id"], "approved_by": actor.name})
    else:
        console.print(f"run {run} approved by {actor.name}", markup=False)


@run_app.command("send", epilog=f"Exit codes: {EXIT_HELP}.")
def send(run: RunArg, org: OrgOption, db: DbOption = None, key: KeyOption = None,
         by: ByOption = None, as_json: JsonOption = False,
         max_attempts: Annotated[int, typer.Option(help="Attempts per message.")] = 5,
         backoff: Annotated[float, typer.Option(help="First retry delay, seconds.")] = 30.0,
         senders: Annotated[int, typer.Option(
             min=1, max=32, help="Sender processes after the canary, each with its own SMTP "
             "and database connections and the guard before each of its messages (one per "
             "core is the fastest; a crash may resend at most one batch per sender)."
         )] = 1,
         batch: Annotated[int, typer.Option(
             min=1, max=MAX_BATCH, help="Messages a sender judges in one transaction and sends "
             "before writing their outcomes (and ledger rows) in one transaction; each still "
             "goes at most 1 s after the guard's fresh read. A crash may send the ones SMTP "
             "had accepted twice, identical (same Message-ID).")] = MAX_BATCH,
         canary_min_failures: Annotated[int, typer.Option(
             min=1, help="The canary halts the run when at least this many of its messages "
             "failed ...")] = 2,
         canary_failure_share: Annotated[float, typer.Option(
             min=0.0, max=1.0, help="... and they are at least this share of the canary (one "
             "bad address is not a systematic failure).")] = 0.3) -> None:
    """Send the run: canary first, the guard before every message, the ledger after.

    Per recipient: a message is delivered to the recipients the server accepts; a recipient
    refused with 5xx is flagged as bounced, with 4xx retried (only it). A refusal of the SMTP
    session (connection, TLS, AUTH, MAIL FROM, a reply naming the client) pauses the run as a
    configuration problem: fix it, then run this command again.

    Example: sealbill run send 2026-11 --org acme --senders 2
    """
    from sealbill.app import run_sends

    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    options = SendOptions(max_attempts=max_attempts, backoff_seconds=backoff, senders=senders,
                          batch=batch,
                          canary_min_failures=canary_min_failures,
                          canary_failure_share=canary_failure_share)
    total = call(lambda: run_sends.to_send(engine, actor, org_id, run), as_json)
    with progress(not as_json, "sending", total) as bar:
        report = call(lambda: run_sends.send(engine, actor, org_id, run, options=options,
                                             on_progress=bar.advance), as_json)
    after = call(lambda: app_runs.show(engine, actor, org_id, run, label=run), as_json)
    code = after["exit_code"]
    payload = {"ok": code == 0, "exit_code": code, "run_id": report["run_id"],
               "status": report["status"], "stopped": report["stopped"],
               "outbox": set_asides.all_counts(report["outbox"]),
               "violations": report["violations"], "seconds": round(report["seconds"], 3),
               "senders": report["senders"], "undelivered": after["undelivered"],
               "stage": bar.figures()}
    if as_json:
        emit_json(payload)
    else:
        console.print(f"run {run}: {report['status']}; outbox {report['outbox']}",
                      markup=False)
        if report["stopped"]:
            console.print(f"stopped: {report['stopped']}", markup=False)
        for line in undelivered_lines(after):  # one line each, however narrow the terminal
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        for line in report_lines(after, run):
            console.print(line, markup=False, highlight=False)
    raise typer.Exit(code)


UNDELIVERED_SHOWN = 50


def undelivered_lines(status: dict[str, Any]) -> list[str]:
    """One line per recipient not delivered (the first 50; ``--json`` lists all)."""
    items = status.get("undelivered") or []
    if not items:
        return []
    out = [f"  not delivered ({len(items)}):"]
    for item in items[:UNDELIVERED_SHOWN]:
        out.append(f"    {item['invoice']} account {item['account']} -> "
                   f"{item['recipient'] or '(no recipient)'}: {item['recipient_state']}"
                   + (f", reply {item['reply']!r}" if item["reply"] else ""))
        out.append(f"      next: {item['next_step']}")
    if len(items) > UNDELIVERED_SHOWN:
        out.append(f"    ... and {len(items) - UNDELIVERED_SHOWN} more (--json lists all)")
    return out


@run_app.command("status", epilog=f"Exit codes: {EXIT_HELP}.")
def run_status(run: RunArg, org: OrgOption, db: DbOption = None, key: KeyOption = None,
               as_json: JsonOption = False) -> None:
    """Where the run's delivery stands: every outbox state counted, every recipient not
    delivered (invoice, account, address, server reply, next step), the messages set aside and
    why, the switch, open alerts; the exit code says the same (0 only when all delivered).

    Example: sealbill run status 2026-11 --org acme --json
    """
    engine, actor, org_id = context(db, org, key, as_json)
    payload = call(lambda: app_runs.show(engine, actor, org_id, run, label=run), as_json)
    payload.update(call(lambda: app_runs.queue_progress(engine, actor, org_id, run), as_json))
    if as_json:
        emit_json(payload)
        raise typer.Exit(payload["exit_code"])
    console.print(f"run {run} ({payload['period']}): {payload['status']}", markup=False)
    if payload["halted_reason"]:
        console.print(f"  reason: {payload['halted_reason']}", markup=False)
    console.print(f"  outbox: {payload['outbox']}", markup=False)
    console.print(f"  sending paused: {payload['switch']['paused']}", markup=False)
    for alert in payload["alerts"]:
        console.print(f"  alert {alert['id']} [{alert['cause']}]: {alert['message']}",
                      markup=False)
    if payload["plan"]:
        console.print(f"  archive copy: {payload['plan']['archive'] or 'none'}", markup=False)
    for line in queue_lines(payload.get("queue")):
        console.print(line, markup=False, highlight=False)
    for line in undelivered_lines(payload):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for line in report_lines(payload, run):
        console.print(line, markup=False, highlight=False)
    raise typer.Exit(payload["exit_code"])


@contacts_app.command("verify")
def contacts_verify(email: str, org: OrgOption,
                    account: Annotated[str, typer.Option(help="Account reference.")],
                    by: ByOption = None, key: KeyOption = None, db: DbOption = None,
                    operator: Annotated[bool, typer.Option(help="Confirm it yourself instead "
                                                           "of mailing a code.")] = False,
                    reason: Annotated[str | None, typer.Option(help="Required with "
                                                               "--operator.")] = None,
                    files_dir: Annotated[str | None, typer.Option(
                        help="Documents folder (default: SEALBILL_FILES_DIR, relative to the "
                             "data directory, or <data dir>/files).")] = None,
                    link_base: Annotated[str | None, typer.Option(
                        "--link-base", envvar="SEALBILL_VERIFY_URL",
                        callback=link_base_option,
                        help="Your verification page (https): the mail then carries a link "
                             "<URL>?code=..., besides the code.")] = None,
                    as_json: JsonOption = False) -> None:
    """Mail a single-use code to EMAIL (French and English), or (--operator --reason) confirm
    it directly. The same use cases as `POST /v1/contacts/{id}/verify` and `/vouch`.

    Example: sealbill contacts verify ap@client.example --org acme --account C000042
    """
    from sealbill.app import contacts as app_contacts

    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    if operator:
        call(lambda: app_contacts.confirm_by_operator(engine, actor, org_id, email, account,
                                                      reason or ""), as_json)
        payload: dict[str, Any] = {"ok": True, "verified": email, "method": "operator"}
    else:
        folder = Path(files_dir) if files_dir else None
        started = call(lambda: app_contacts.send_verification(
            engine, actor, org_id, email, account, link_base=link_base, files_dir=folder),
            as_json)
        payload = {"ok": True, "sent_to": started["sent_to"],
                   "expires_at": started["expires_at"].isoformat()}
    emit_json(payload) if as_json else console.print(payload, markup=False)


@contacts_app.command("confirm")
def contacts_confirm(org: OrgOption, code: Annotated[str, typer.Option(help="The code.")],
                     by: ByOption = None, key: KeyOption = None, db: DbOption = None,
                     files_dir: Annotated[str | None, typer.Option(
                         help="Documents folder (default: see contacts verify).")] = None,
                     as_json: JsonOption = False) -> None:
    """Redeem a code sent by `contacts verify`: the link becomes verified.

    Example: sealbill contacts confirm --org acme --code 7KQ4-M2XD
    """
    from sealbill.app import contacts as app_contacts

    by_ignored(by)
    engine, actor, org_id = context(db, org, key, as_json)
    folder = Path(files_dir) if files_dir else None
    done = call(lambda: app_contacts.confirm_code(engine, actor, org_id, code,
                                                  files_dir=folder), as_json)
    payload = {"ok": True, "contact_id": done["id"], "account_id": done.get("account_id")}
    emit_json(payload) if as_json else console.print("address verified", markup=False)


def smtp_sink(maildir: Annotated[Path, typer.Option(help="Maildir to write messages to.")],
              host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="Port to listen on.")] = 2525) -> None:
    """A local SMTP server keeping every message (with its SMTP envelope) in a Maildir.

    Example: sealbill smtp-sink --maildir var/mail --port 2525
    """
    from sealbill.mail.sink import SinkHandler, start_sink

    controller = start_sink(SinkHandler(maildir=maildir), host=host, port=port)
    console.print(f"smtp-sink listening on {host}:{controller.port}, writing to {maildir}",
                  markup=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()
