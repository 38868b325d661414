"""What an operator records on an incident from the console: the facts (cause, detection),
the severity (ENISA inputs, each change justified), the measures taken and proposed with the
dates the deletion was requested and the customers warned, the notification (type, date, why
late), the decision to notify or not with its reasoning and the Art. 34 plan, containment (the
kill switch) and the closing. Each goes through the same pipeline function as the CLI
(``sealbill incident update|assess|decide|close``, ``sealbill pause``), so it lands in the
incident's timeline, and is audited.

Invariants: only roles that may act on runs (``runs.write`` or ``runs.approve``) record
anything here; a refused input changes nothing (the pipeline validates before writing); each
act's audit entry is written in the transaction that appends its timeline event
(:func:`audited`), so the act and its entry commit together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.accounts import account_row
from sealbill.app.context import RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, NotFound, Problem, StateError
from sealbill.domain.severity import INPUT_NAMES
from sealbill.pipeline.incident import actions as pipeline
from sealbill.store import stage_events
from sealbill.store.db import transaction
from sealbill.store.incident import incidents as store
from sealbill.store.incident.containment import pause_sending


def _may_act(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> None:
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not record incident decisions")
    actor.require_org(org_id)
    with engine.begin() as conn:
        try:
            store.incident(conn, org_id, incident_id)
        except LookupError:
            raise NotFound(f"incident {incident_id} not found") from None


def audit_incident(engine: Engine | Connection, actor: Actor, org_id: int, incident_id: int,
                   action: str, after: Any) -> None:
    """The audit entry of an act on an incident, named by its public id (``inc_…``) from
    every door, so one incident's entries are found together. Given a connection, it is
    written in that connection's transaction (the act's own)."""
    if isinstance(engine, Connection):
        audit.record(engine, actor, org_id, action, "incident",
                     ids.encode(engine, org_id, "incident", incident_id), after=after)
        return
    with engine.begin() as conn:
        audit_incident(conn, actor, org_id, incident_id, action, after)


@dataclass
class _Act:
    """The audit entry an act on an incident owes, written in the transaction that appends
    the act's timeline event (the first one), with that event's detail."""

    actor: Actor
    org_id: int
    incident_id: int
    action: str
    after: dict[str, Any]
    written: bool = False


_act: ContextVar[_Act | None] = ContextVar("sealbill_incident_act", default=None)


@contextmanager
def audited(engine: Engine, actor: Actor, org_id: int, incident_id: int, action: str,
            after: dict[str, Any]) -> Iterator[None]:
    """Run an act whose audit entry commits with its timeline event; an act that appended
    none (nothing changed) gets its entry right after."""
    act = _Act(actor, org_id, incident_id, action, after)
    token = _act.set(act)
    try:
        yield
    finally:
        _act.reset(token)
    if not act.written:
        audit_incident(engine, actor, org_id, incident_id, action, after)


def _on_fact(conn: Connection, org_id: int, event: str, facts: Mapping[str, Any]) -> None:
    act = _act.get()
    if (event != stage_events.INCIDENT_EVENT or act is None or act.written
            or act.org_id != org_id or act.incident_id != facts["incident_id"]):
        return
    audit_incident(conn, act.actor, org_id, act.incident_id, act.action,
                   {**act.after, "event": facts["event"], "detail": facts["detail"]})
    act.written = True


stage_events.subscribe(_on_fact)
_audit = audit_incident


def record_facts(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
                 cause: str, detection: str) -> None:
    _may_act(engine, actor, org_id, incident_id)
    facts = {k: v.strip() for k, v in (("cause", cause), ("detection", detection))
             if v.strip()}
    if not facts:
        raise Invalid("facts: 1 problem(s)", [Problem("cause", "give the cause or how the "
                                                      "breach was detected")])
    _update(engine, actor, org_id, incident_id, pipeline.FactsUpdate(facts=facts),
            "incident.update")


# The pipeline's refusals of a decision, by the field they concern (the first that matches).
_DECISION_FIELDS = (("data subjects needs", "communication_reason"),
                    ("communication must", "communication"), ("exemption", "exemption"))


def decide(engine: Engine, actor: Actor, org_id: int, incident_id: int, *, notify: bool,
           reason: str, communication: str | None, communication_reason: str = "",
           exemption: str | None = None) -> dict[str, Any]:
    _may_act(engine, actor, org_id, incident_id)
    try:
        with audited(engine, actor, org_id, incident_id, "incident.decide", {
                "notify": notify, "reason": reason, "communication": communication}):
            return pipeline.decide(engine, org_id, incident_id, notify=notify, reason=reason,
                                   communication=communication or None,
                                   exemption=exemption or None,
                                   communication_reason=communication_reason,
                                   actor=actor.name)
    except ValueError as exc:
        message = str(exc)
        if "is closed" in message:
            raise StateError(message) from None
        field = next((name for hint, name in _DECISION_FIELDS if hint in message), "reason")
        raise Invalid("decision: 1 problem(s)", [Problem(field, message)]) from None


def contain(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> None:
    """Pause all sending of the organization (the kill switch) because of this incident."""
    _may_act(engine, actor, org_id, incident_id)
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        pause_sending(conn, org_id, actor=actor.name,
                      reason=f"incident {incident_id}: {incident['title']}"[:500])
        store.update_record(conn, org_id, incident_id,
                            {"containment": {"at": store.now().isoformat(), "by": actor.name}},
                            event="sending_paused", actor=actor.name)
        _audit(conn, actor, org_id, incident_id, "incident.contain", {"paused": True})


def _refused(what: str, field: str, exc: ValueError) -> Invalid:
    return Invalid(f"{what}: 1 problem(s); nothing was written", [Problem(field, str(exc))])


def _time(value: str, field: str) -> datetime | None:
    """An ISO 8601 instant with its offset (a form's blank: nothing to record)."""
    if not value.strip():
        return None
    try:
        return pipeline.parse_time(value, field)
    except ValueError as exc:
        raise _refused("incident", field, exc) from None


def assess(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
           changes: Mapping[str, str], justifications: Mapping[str, str],
           recipients_known: bool = True) -> dict[str, Any]:
    """Severity by the ENISA method: proposed from the blast radius, with the operator's
    changes (a blank value keeps the proposal; a change needs its justification)."""
    _may_act(engine, actor, org_id, incident_id)
    numbers: dict[str, Decimal | int] = {}
    problems = []
    for name, text in changes.items():
        if name not in INPUT_NAMES or not text.strip():
            continue
        try:
            numbers[name] = int(text) if name == "dpc" else Decimal(text.strip())
        except (ValueError, InvalidOperation):
            problems.append(Problem(name, f"not a number: {text!r}"))
    if problems:
        raise Invalid(f"severity: {len(problems)} problem(s); nothing was written", problems)
    reasons = {k: v.strip() for k, v in justifications.items() if v.strip()}
    try:
        with audited(engine, actor, org_id, incident_id, "incident.assess",
                     {"changes": numbers, "justifications": reasons}):
            assessment = pipeline.assess(engine, org_id, incident_id, changes=numbers,
                                         justifications=reasons,
                                         recipients_known=recipients_known, actor=actor.name)
    except ValueError as exc:
        raise _refused("severity", "justification", exc) from None
    return assessment.to_dict()


def record_measures(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
                    taken: str = "", proposed: str = "", deletion_requested_at: str = "",
                    customers_warned_at: str = "") -> None:
    """Append a measure taken and/or proposed; record when the recipients were asked to
    delete the mail and when the customers were warned (times with their offset)."""
    _may_act(engine, actor, org_id, incident_id)
    change = pipeline.FactsUpdate(
        measures_taken=(taken.strip(),) if taken.strip() else (),
        measures_proposed=(proposed.strip(),) if proposed.strip() else (),
        deletion_requested_at=_time(deletion_requested_at, "deletion_requested_at"),
        customers_warned_at=_time(customers_warned_at, "customers_warned_at"))
    if change == pipeline.FactsUpdate():
        raise Invalid("measures: 1 problem(s); nothing was written",
                      [Problem("taken", "give a measure or a date")])
    _update(engine, actor, org_id, incident_id, change, "incident.measures")


def record_notification(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
                        notification_type: str = "", notified_at: str = "",
                        delay_reason: str = "") -> None:
    """The notification to the authority: its type, when it was made (the incident becomes
    ``notified``), and the reasons for a delay past 72 hours."""
    _may_act(engine, actor, org_id, incident_id)
    change = pipeline.FactsUpdate(
        notification_type=notification_type.strip() or None,
        notified_at=_time(notified_at, "notified_at"),
        delay_reason=delay_reason.strip() or None)
    if change == pipeline.FactsUpdate():
        raise Invalid("notification: 1 problem(s); nothing was written",
                      [Problem("notified_at", "give the type, the date or the delay reason")])
    _update(engine, actor, org_id, incident_id, change, "incident.notification")


def update(engine: Engine, actor: Actor, org_id: int, incident_id: int,
           change: pipeline.FactsUpdate) -> dict[str, Any]:
    """Any facts, measures and notification progress at once (``sealbill incident update``;
    lists are appended to): the incident's record as it is now."""
    _may_act(engine, actor, org_id, incident_id)
    return _update(engine, actor, org_id, incident_id, change, "incident.update")


def _update(engine: Engine, actor: Actor, org_id: int, incident_id: int,
            change: pipeline.FactsUpdate, action: str) -> dict[str, Any]:
    after = {k: (v.isoformat() if isinstance(v, datetime) else v)
             for k, v in vars(change).items() if v not in (None, (), {})}
    try:
        with audited(engine, actor, org_id, incident_id, action, after):
            return pipeline.update(engine, org_id, incident_id, change, actor=actor.name)
    except ValueError as exc:
        field = ("notification_type" if "notification type" in str(exc) else
                 str(exc).split(":")[0].lstrip("-").replace("-", "_")
                 if str(exc).startswith("--") else "")
        raise _refused("incident", field, exc) from None


def close(engine: Engine, actor: Actor, org_id: int, incident_id: int, reason: str) -> None:
    """Close the incident (it stays in the register with everything it recorded)."""
    _may_act(engine, actor, org_id, incident_id)
    if len(reason.strip()) < 3:
        raise Invalid("closing: 1 problem(s); nothing was written",
                      [Problem("reason", "give a reason")])
    try:
        with audited(engine, actor, org_id, incident_id, "incident.close",
                     {"reason": reason.strip()}):
            pipeline.close(engine, org_id, incident_id, reason=reason, actor=actor.name)
    except ValueError as exc:
        raise _refused("closing", "", exc) from None


def correct_link(engine: Engine, actor: Actor, org_id: int, incident_id: int, *, contact: str,
                 account: str, entitled: bool, reason: str, valid_from: datetime | None = None,
                 valid_to: datetime | None = None) -> int:
    """Mark a contact <-> account link as (not) entitled over [valid_from, valid_to),
    retroactively, under this incident: the corrected blast radius uses it at once. The
    contact is named by its public id (``con_…``), row id or address; the account by its
    public id (``acc_…``), reference or row id. Correction, timeline event and audit entry
    are one transaction."""
    _may_act(engine, actor, org_id, incident_id)
    contact_ref, account_ref = _link_refs(engine, org_id, contact, account)

    def audited(conn: Connection, correction_id: int) -> None:
        audit_incident(conn, actor, org_id, incident_id, "incident.correct_link", {
            "contact": contact, "account": account, "entitled": entitled,
            "reason": reason.strip(),
            "valid_from": valid_from.isoformat() if valid_from else None,
            "valid_to": valid_to.isoformat() if valid_to else None})

    try:
        return pipeline.correct_link(
            engine, org_id, incident_id, contact=contact_ref, account=account_ref,
            entitled=entitled, reason=reason, actor=actor.name, valid_from=valid_from,
            valid_to=valid_to, then=audited)
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except ValueError as exc:
        field = "reason" if "reason" in str(exc) else "valid_to"
        raise _refused("link correction", field, exc) from None


def _link_refs(engine: Engine, org_id: int, contact: str, account: str) -> tuple[str, str]:
    """The contact and account as the pipeline names them: public ids become row ids."""
    with engine.begin() as conn:
        if contact.startswith("con_") and "@" not in contact:
            contact = str(ids.decode(conn, org_id, "contact", contact))
        if account.startswith("acc_"):
            account = str(account_row(conn, org_id, account)["id"])  # or NotFound, Gone
    return contact, account


def rotate(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> pipeline.Rotation:
    """New public ids for the accounts in the corrected blast radius, their outstanding
    tokens and links revoked (old ids answer "gone"); rotation, timeline event and audit
    entry are one transaction."""
    _may_act(engine, actor, org_id, incident_id)

    def audited(conn: Connection, rotation: pipeline.Rotation) -> None:
        audit_incident(conn, actor, org_id, incident_id, "incident.rotate", {
            "accounts": [a["reference"] for a in rotation.accounts],
            "retired_public_ids": [a["retired_public_id"] for a in rotation.accounts],
            "tokens_revoked": rotation.tokens_revoked})

    return pipeline.rotate(engine, org_id, incident_id, actor=actor.name, then=audited)
