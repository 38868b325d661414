"""``sealbill incident ...``: open, measure, assess, decide, draft, rotate, register.

Times are ISO 8601 with an offset (``2026-05-14T13:35:00+02:00``); a time without one is bad
usage (exit 2), never guessed. Unknown incident, contact or account: exit 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import Engine

from sealbill.app import ids, incident_actions, incidents
from sealbill.app.context import Actor
from sealbill.cli.common import (
    DbOption,
    JsonOption,
    OrgOption,
    console,
    emit_json,
    fail,
    usage_error,
)
from sealbill.cli.operate import ByOption, KeyOption, by_ignored, call, context
from sealbill.domain.severity import INPUT_NAMES
from sealbill.pipeline.incident import actions as pipeline
from sealbill.pipeline.incident.actions import FactsUpdate
from sealbill.store.parties import records as parties

app = typer.Typer(help="Incident response: blast radius from the ledger, GDPR drafts, "
                       "72-hour clock, breach register, rotation.", no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(help="Incident id.")]
T = TypeVar("T")
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV (for legal).")]


def register(root: typer.Typer) -> None:
    from sealbill.cli import incident_reports  # noqa: F401  (its commands join this group)

    root.add_typer(app, name="incident")


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Bad values are usage errors (2); a missing row is a failure (1)."""
    try:
        yield
    except parties.NotFound as exc:
        fail(str(exc), as_json=as_json)
    except ValueError as exc:
        usage_error(str(exc), as_json=as_json)


def _time(text: str | None, name: str) -> datetime | None:
    return None if text is None else pipeline.parse_time(text, name)


def _use_case(db: str | None, org: str, key: str | None, as_json: bool,
              action: Callable[[Engine, Actor, int], T]) -> T:
    """Through the application layer, as the API: the --key's operator (or ``local:<user>``),
    its role checked, the act audited; a bad value given here is bad usage (exit 2)."""
    engine, actor, org_id = context(db, org, key, as_json)
    with _errors(as_json):
        return call(lambda: action(engine, actor, org_id), as_json)


@app.command("open")
def open_command(
    org: OrgOption,
    title: Annotated[str, typer.Option("--title", help="What is suspected.")],
    aware_at: Annotated[str, typer.Option("--aware-at", help="When the controller became "
                                          "aware (the 72-hour clock starts here).")],
    window: Annotated[tuple[str, str] | None, typer.Option(
        "--window", help="Only messages sent in [FROM, TO).")] = None,
    run: Annotated[int | None, typer.Option("--run", help="Only this billing run.")] = None,
    message_id: Annotated[list[str] | None, typer.Option(
        "--message-id", help="Only these messages (repeatable).")] = None,
    pause_sending: Annotated[bool, typer.Option(
        "--pause-sending", help="Pause all sending of the organization (kill switch).")] = False,
    description: Annotated[str, typer.Option(
        "--description", help="What happened, as known now (recorded with the opening).")] = "",
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open an incident; the scope criteria combine (a message must match all of them).
    Audited, with its ``incident.opened`` webhook, as over the API.

    Example: sealbill incident open --org acme --title "Invoices mailed to the wrong customer"
    --aware-at 2026-12-01T09:30:00+01:00 --run 12 --pause-sending
    """
    by_ignored(actor)

    def action(engine: Engine, who: Actor, org_id: int) -> int:
        data: dict[str, Any] = {
            "title": title, "aware_at": _iso(aware_at, "--aware-at"),
            "message_ids": list(message_id or ()), "pause_sending": pause_sending,
            "description": description}
        if window:
            data["window_from"] = _iso(window[0], "--window FROM")
            data["window_to"] = _iso(window[1], "--window TO")
        with engine.begin() as conn:
            if run is not None:
                data["run_id"] = ids.encode(conn, org_id, "run", run)
        opened = incidents.open_incident(engine, who, org_id, data)
        with engine.begin() as conn:
            return ids.decode(conn, org_id, "incident", opened["id"])

    incident_id = _use_case(db, org, key, as_json, action)
    if as_json:
        emit_json({"ok": True, "incident_id": incident_id, "sending_paused": pause_sending})
        return
    console.print(f"incident {incident_id} opened"
                  + ("; sending paused for the organization" if pause_sending else ""))
    console.print(f"next: sealbill incident radius {incident_id}")


@app.command("correct-link")
def correct_link_command(
    incident_id: IdArg, org: OrgOption,
    contact: Annotated[str, typer.Option("--contact", help="Contact id or email.")],
    account: Annotated[str, typer.Option("--account", help="Account reference or id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    entitled: Annotated[bool, typer.Option("--entitled/--not-entitled",
                                           help="What the link should have been.")] = False,
    valid_from: Annotated[str | None, typer.Option("--from")] = None,
    valid_to: Annotated[str | None, typer.Option("--to")] = None,
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a contact <-> account link as wrong (or right) retroactively.

    Example: sealbill incident correct-link 3 --org acme --contact ap@client.example --account
    C000042 --not-entitled --reason "address belonged to another customer"
    """
    by_ignored(actor)
    with _errors(as_json):
        window = _time(valid_from, "--from"), _time(valid_to, "--to")
    correction_id = _use_case(db, org, key, as_json, lambda engine, who, org_id: incident_actions
                              .correct_link(engine, who, org_id, incident_id, contact=contact,
                                            account=account, entitled=entitled, reason=reason,
                                            valid_from=window[0], valid_to=window[1]))
    if as_json:
        emit_json({"ok": True, "correction_id": correction_id})
    else:
        console.print(f"correction {correction_id} recorded; the corrected view uses it now")


@app.command("assess")
def assess_command(
    incident_id: IdArg, org: OrgOption,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Change an ENISA input: NAME=VALUE (dpc, ei, cb_confidentiality, "
        "cb_integrity, cb_availability, cb_malicious).")] = None,
    justify: Annotated[list[str] | None, typer.Option(
        "--justify", help="NAME=why, required for every changed input.")] = None,
    recipients_unknown: Annotated[bool, typer.Option(
        "--recipients-unknown", help="The data went to an unknown number of recipients.")
    ] = False,
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Severity by the ENISA method, proposed from the blast radius, adjusted with reasons.

    Example: sealbill incident assess 3 --org acme --set cb_confidentiality=0.5 --justify
    "cb_confidentiality=encrypted at rest"
    """
    by_ignored(actor)
    with _errors(as_json):
        changes = dict(_pairs(set_ or [], "--set"))
        justifications = dict(_pairs(justify or [], "--justify"))
    data = _use_case(db, org, key, as_json, lambda engine, who, org_id: incident_actions.assess(
        engine, who, org_id, incident_id, changes=changes, justifications=justifications,
        recipients_known=not recipients_unknown))
    if as_json:
        emit_json(data)
        return
    cb = sum(Decimal(v) for k, v in data["inputs"].items() if k.startswith("cb_"))
    console.print(f"SE = {data['inputs']['dpc']} × {data['inputs']['ei']} + "
                  f"{cb} = [bold]{data['score']}[/] ({data['level']})")
    for name, why in data["proposed_rationale"].items():
        change = data["adjustments"].get(name)
        if change:  # the operator's reason replaces the proposal's
            why = f"adjusted from {change['from']}: {change['justification']}"
        console.print(f"  {name}: {data['inputs'][name]} — {why}", markup=False)


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in INPUT_NAMES:
            raise ValueError(f"{option} takes NAME=VALUE with NAME in {', '.join(INPUT_NAMES)}")
        pairs.append((name.strip(), value.strip()))
    return pairs


@app.command("decide")
def decide_command(
    incident_id: IdArg, org: OrgOption,
    notify: Annotated[bool, typer.Option("--notify/--no-notify",
                                         help="Notify the supervisory authority or not.")],
    reason: Annotated[str, typer.Option("--reason", help="The reasoning (recorded).")],
    communication: Annotated[str | None, typer.Option(
        "--communication", help="To the data subjects: done | planned | exempt | "
        "not_required.")] = None,
    exemption: Annotated[str | None, typer.Option("--exemption",
                                                  help="Art. 34(3) point: a | b | c.")] = None,
    communication_reason: Annotated[str | None, typer.Option("--communication-reason")] = None,
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the decision to notify or not, with its reasoning (Art. 33(5)).

    Example: sealbill incident decide 3 --org acme --notify --reason "names and amounts reached
    other customers" --communication planned
    """
    by_ignored(actor)
    decision = _use_case(db, org, key, as_json, lambda engine, who, org_id: incident_actions
                         .decide(engine, who, org_id, incident_id, notify=notify,
                                 reason=reason, communication=communication,
                                 exemption=exemption,
                                 communication_reason=communication_reason or ""))
    if as_json:
        emit_json({"ok": True, "decision": decision})
        return
    console.print(f"decision recorded: {'notify' if notify else 'do not notify'}")
    console.print(f"recommended: {decision['recommended']['reasoning']}", markup=False)


@app.command("update")
def update_command(
    incident_id: IdArg, org: OrgOption,
    description: Annotated[str | None, typer.Option("--description")] = None,
    cause: Annotated[str | None, typer.Option("--cause")] = None,
    detection: Annotated[str | None, typer.Option("--detection")] = None,
    breach_start: Annotated[str | None, typer.Option("--breach-start")] = None,
    breach_end: Annotated[str | None, typer.Option("--breach-end")] = None,
    nature: Annotated[list[str] | None, typer.Option("--nature")] = None,
    consequence: Annotated[list[str] | None, typer.Option("--consequence")] = None,
    measure_taken: Annotated[list[str] | None, typer.Option("--measure-taken")] = None,
    measure_proposed: Annotated[list[str] | None, typer.Option("--measure-proposed")] = None,
    deletion_requested_at: Annotated[str | None, typer.Option("--deletion-requested-at")
                                     ] = None,
    customers_warned_at: Annotated[str | None, typer.Option("--customers-warned-at")] = None,
    notification_type: Annotated[str | None, typer.Option("--notification-type")] = None,
    notified_at: Annotated[str | None, typer.Option("--notified-at")] = None,
    delay_reason: Annotated[str | None, typer.Option("--delay-reason")] = None,
    db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record facts, measures and the notification's progress (lists are appended to).

    Example: sealbill incident update 3 --org acme --cause "stale contact after a merge"
    --measure-taken "contact unlinked"
    """
    by_ignored(actor)

    def action(engine: Engine, who: Actor, org_id: int) -> Any:
        facts = {key: value for key, value in (
            ("description", description), ("cause", cause), ("detection", detection),
            ("breach_start", _iso(breach_start, "--breach-start")),
            ("breach_end", _iso(breach_end, "--breach-end"))) if value is not None}
        change = FactsUpdate(
            facts=facts, nature=tuple(nature or ()), consequences=tuple(consequence or ()),
            measures_taken=tuple(measure_taken or ()),
            measures_proposed=tuple(measure_proposed or ()),
            deletion_requested_at=_time(deletion_requested_at, "--deletion-requested-at"),
            customers_warned_at=_time(customers_warned_at, "--customers-warned-at"),
            notification_type=notification_type,
            notified_at=_time(notified_at, "--notified-at"), delay_reason=delay_reason)
        return incident_actions.update(engine, who, org_id, incident_id, change)

    record = _use_case(db, org, key, as_json, action)
    if as_json:
        emit_json({"ok": True, "record": record})
    else:
        console.print(f"incident {incident_id} updated; see: sealbill incident status "
                      f"{incident_id}")


def _iso(text: str | None, name: str) -> str | None:
    moment = _time(text, name)
    return moment.isoformat() if moment else None


@app.command("rotate")
def rotate_command(incident_id: IdArg, org: OrgOption, db: DbOption = None,
                   key: KeyOption = None, actor: ByOption = None,
                   as_json: JsonOption = False) -> None:
    """New public ids for the affected accounts; their outstanding tokens and links revoked.

    Example: sealbill incident rotate 3 --org acme --json
    """
    by_ignored(actor)
    rotation = _use_case(db, org, key, as_json, lambda engine, who, org_id: incident_actions
                         .rotate(engine, who, org_id, incident_id))
    if as_json:
        emit_json({"ok": True, "accounts": rotation.accounts,
                   "tokens_revoked": rotation.tokens_revoked})
        return
    console.print(f"{len(rotation.accounts)} account(s) rotated, "
                  f"{rotation.tokens_revoked} token(s) revoked; old ids now answer 'gone'")


@app.command("close")
def close_command(incident_id: IdArg, org: OrgOption,
                  reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
                  db: DbOption = None, key: KeyOption = None, actor: ByOption = None,
                  as_json: JsonOption = False) -> None:
    """Close an incident; it stays in the register.

    Example: sealbill incident close 3 --org acme --reason "notified, letters sent, contacts
    corrected"
    """
    by_ignored(actor)
    _use_case(db, org, key, as_json, lambda engine, who, org_id: incident_actions.close(
        engine, who, org_id, incident_id, reason))
    if as_json:
        emit_json({"ok": True, "incident_id": incident_id, "status": "closed"})
    else:
        console.print(f"incident {incident_id} closed; it stays in the register")
