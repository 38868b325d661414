"""Incident response, one transaction per operator action: open, radius, assess, decide, rotate.

Invariants:
- the blast radius is computed from the ledger and the contact history only (see
  :mod:`sealbill.store.incident.evidence`), every time it is asked for: nothing cached can go
  stale behind a late correction;
- every operator action is one transaction that changes the record *and* appends its event,
  so the register (Art. 33(5)) and the timeline never disagree;
- a decision, an assessment adjustment and a late notification each carry a reason: the
  store refuses them without one;
- rotation retires the public ids of exactly the accounts of the effective view and revokes
  every outstanding token of those accounts, in one transaction with its event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.domain import blast_radius, severity
from sealbill.domain.breach_clock import require_aware
from sealbill.domain.breach_notice import COMMUNICATION_STATUSES, EXEMPTIONS, NOTIFICATION_TYPES
from sealbill.incident.drafts import DraftFile, write_drafts
from sealbill.incident.facts import Dossier, build_dossier
from sealbill.pipeline.incident.incident_times import (
    ACTION_TIMES,
    check_update_times,
    not_future,
    require_open,
)
from sealbill.store.db import transaction
from sealbill.store.delivery import ledger
from sealbill.store.incident import evidence
from sealbill.store.incident import incidents as store
from sealbill.store.incident.containment import pause_sending, revoke_outstanding_tokens
from sealbill.store.parties import records as parties


def parse_time(text: str, name: str = "time") -> datetime:
    """An ISO 8601 instant *with* its offset; a naive one is refused, never guessed."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{name}: not an ISO 8601 time: {text!r}") from exc
    return require_aware(value, name)


@dataclass(frozen=True)
class Scope:
    window: tuple[datetime, datetime] | None = None
    run_id: int | None = None
    message_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ValueError("the window's start must come before its end")

    def to_json(self) -> dict[str, Any]:
        return {
            "window": ({"from": self.window[0].isoformat(), "to": self.window[1].isoformat()}
                       if self.window else None),
            "run_id": self.run_id,
            "message_ids": list(self.message_ids),
        }


def open_incident(engine: Engine, org_id: int, *, title: str, aware_at: datetime,
                  scope: Scope, actor: str, pause: bool = False,
                  description: str = "",
                  then: Callable[[Connection, int], None] | None = None) -> int:
    """Open the incident (with its description, if given); with ``pause``, halt the
    organization's sending in the same breath. ``then(conn, incident_id)`` runs in the same
    transaction (the application layer writes the audit entry and the ``incident.opened``
    webhook there: all or nothing)."""
    not_future(require_aware(aware_at, "aware_at"), "--aware-at")
    with transaction(engine) as conn:
        incident_id = store.open_incident(conn, org_id, title=title, aware_at=aware_at,
                                          scope=scope.to_json(), actor=actor)
        if description.strip():
            facts = {**store.empty_record()["facts"], "description": description.strip()}
            store.update_record(conn, org_id, incident_id, {"facts": facts},
                                event="updated", actor=actor)
        if pause:
            at = datetime.now(UTC)
            pause_sending(conn, org_id, actor=actor, reason=f"incident {incident_id}: {title}")
            store.update_record(conn, org_id, incident_id,
                                {"containment": {"at": at.isoformat(), "by": actor}},
                                event="sending_paused", actor=actor, at=at)
        if then is not None:
            then(conn, incident_id)
    return incident_id


def radius_in(conn: Connection, org_id: int,
              scope: Mapping[str, Any]) -> blast_radius.BlastRadius:
    messages = evidence.ledger_messages(conn, org_id, scope)
    return blast_radius.compute(
        messages,
        evidence.link_history(conn, org_id, messages),
        evidence.corrections(conn, org_id),
        evidence.subjects(conn, org_id, {m.account_id for m in messages}),
        evidence.archive_addresses(conn, org_id),
    )


def radius(engine: Engine, org_id: int, incident_id: int) -> blast_radius.BlastRadius:
    with engine.connect() as conn:
        return radius_in(conn, org_id, store.incident(conn, org_id, incident_id)["scope"])


def ledger_check(engine: Engine, org_id: int) -> ledger.LedgerReport:
    """The ledger's own integrity check: a broken chain means the radius may be incomplete."""
    with engine.connect() as conn:
        return ledger.verify(conn, org_id)


def dossier_in(conn: Connection, org_id: int, incident_id: int,
               now: datetime | None = None) -> Dossier:
    incident = store.incident(conn, org_id, incident_id)
    return build_dossier(parties.organization(conn, org_id), incident,
                         store.events(conn, org_id, incident_id),
                         radius_in(conn, org_id, incident["scope"]), now or datetime.now(UTC),
                         ledger_problems=ledger.verify(conn, org_id).problems)


def dossier(engine: Engine, org_id: int, incident_id: int,
            now: datetime | None = None) -> Dossier:
    with engine.connect() as conn:
        return dossier_in(conn, org_id, incident_id, now)


def correct_link(engine: Engine, org_id: int, incident_id: int, *, contact: str, account: str,
                 entitled: bool, reason: str, actor: str, valid_from: datetime | None = None,
                 valid_to: datetime | None = None,
                 then: Callable[[Connection, int], None] | None = None) -> int:
    """Record a retroactive link correction under the incident; ``then(conn, correction_id)``
    runs in the same transaction (the application layer's audit entry)."""
    with transaction(engine) as conn:
        correction_id = store.add_correction(
            conn, org_id, contact_id=store.contact_id_for(conn, org_id, contact),
            account_id=store.account_id_for(conn, org_id, account), entitled=entitled,
            reason=reason, actor=actor, incident_id=incident_id, valid_from=valid_from,
            valid_to=valid_to)
        if then is not None:
            then(conn, correction_id)
    return correction_id


def assess(engine: Engine, org_id: int, incident_id: int, *,
           changes: Mapping[str, Decimal | int], justifications: Mapping[str, str],
           recipients_known: bool = True, actor: str) -> severity.Assessment:
    """Propose the ENISA inputs from the blast radius, apply the operator's justified changes."""
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        view = radius_in(conn, org_id, incident["scope"]).effective
        proposal = severity.propose(view.data_categories, has_leak=view.has_leak,
                                    recipients_known=recipients_known)
        assessment = severity.adjust(proposal, changes, justifications)
        section = {**assessment.to_dict(), "by": actor, "at": datetime.now(UTC).isoformat()}
        store.update_record(conn, org_id, incident_id, {"severity": section},
                            event="assessed", actor=actor)
    return assessment


def decide(engine: Engine, org_id: int, incident_id: int, *, notify: bool, reason: str,
           communication: str | None, exemption: str | None = None,
           communication_reason: str | None = None, actor: str) -> dict[str, Any]:
    """Record notify / don't notify with its reasoning, and the Art. 34 communication plan."""
    if not reason.strip():
        raise ValueError("a decision needs its reasoning (--reason)")
    if communication is not None and communication not in COMMUNICATION_STATUSES:
        raise ValueError(f"communication must be one of {COMMUNICATION_STATUSES}")
    if communication == "exempt" and exemption not in EXEMPTIONS:
        raise ValueError("an exemption names its Art. 34(3) point: a, b or c")
    if communication in ("exempt", "not_required") and not (communication_reason or "").strip():
        raise ValueError("not communicating to the data subjects needs a reason")
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        view = radius_in(conn, org_id, incident["scope"]).effective
        sev = incident["record"].get("severity")
        level = severity.Level(sev["level"]) if sev else None
        recommendation = severity.recommend(view.has_leak, level)
        decision = {
            "notify": notify, "reason": reason.strip(), "by": actor,
            "at": datetime.now(UTC).isoformat(),
            "recommended": {"notify_authority": recommendation.notify_authority,
                            "communicate_subjects": recommendation.communicate_subjects,
                            "reasoning": recommendation.reasoning},
            "communication": {"status": communication,
                              "exemption": exemption if communication == "exempt" else None,
                              "reason": (communication_reason or "").strip() or None},
        }
        store.update_record(conn, org_id, incident_id, {"decision": decision},
                            event="decided", actor=actor)
    return decision


FACT_FIELDS = ("description", "cause", "detection", "breach_start", "breach_end")


@dataclass(frozen=True)
class FactsUpdate:
    """What ``incident update`` may change; None / empty leaves a value as it is."""

    facts: Mapping[str, str] | None = None
    nature: tuple[str, ...] = ()
    consequences: tuple[str, ...] = ()
    measures_taken: tuple[str, ...] = ()
    measures_proposed: tuple[str, ...] = ()
    deletion_requested_at: datetime | None = None
    customers_warned_at: datetime | None = None
    notification_type: str | None = None
    notified_at: datetime | None = None
    delay_reason: str | None = None


def update(engine: Engine, org_id: int, incident_id: int, change: FactsUpdate, *,
           actor: str) -> dict[str, Any]:
    """Merge the operator's statements into the record; lists are appended to, not replaced."""
    if change.notification_type is not None and change.notification_type not in (
            NOTIFICATION_TYPES):
        raise ValueError(f"notification type must be one of {NOTIFICATION_TYPES}")
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        record = incident["record"]
        facts = dict(record["facts"])
        for key, value in (change.facts or {}).items():
            if key not in FACT_FIELDS:
                raise ValueError(f"unknown fact {key!r}")
            facts[key] = value
        check_update_times(incident, facts, {name: getattr(change, name)
                                             for name in ACTION_TIMES})
        facts["nature"] = _merged(facts["nature"], change.nature)
        facts["consequences"] = _merged(facts["consequences"], change.consequences)
        measures = dict(record["measures"])
        measures["taken"] = _merged(measures["taken"], change.measures_taken)
        measures["proposed"] = _merged(measures["proposed"], change.measures_proposed)
        for key in ("deletion_requested_at", "customers_warned_at"):
            moment = getattr(change, key)
            if moment is not None:
                measures[key] = require_aware(moment, key).isoformat()
        notification = dict(record["notification"])
        if change.notification_type is not None:
            notification["type"] = change.notification_type
        if change.notified_at is not None:
            notification["notified_at"] = require_aware(change.notified_at,
                                                        "notified_at").isoformat()
        if change.delay_reason is not None:
            notification["delay_reason"] = change.delay_reason.strip() or None
        status = "notified" if change.notified_at is not None else None
        return store.update_record(
            conn, org_id, incident_id,
            {"facts": facts, "measures": measures, "notification": notification},
            event="updated", actor=actor, detail=_change_detail(change), status=status)


def _merged(current: list[str], added: tuple[str, ...]) -> list[str]:
    return current + [item.strip() for item in added if item.strip() and item not in current]


def _change_detail(change: FactsUpdate) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for key, value in vars(change).items():
        if value in (None, (), {}):
            continue
        detail[key] = value.isoformat() if isinstance(value, datetime) else value
    return detail


@dataclass(frozen=True)
class Rotation:
    accounts: list[dict[str, Any]]
    tokens_revoked: int


def rotate(engine: Engine, org_id: int, incident_id: int, *, actor: str,
           then: Callable[[Connection, Rotation], None] | None = None) -> Rotation:
    """New public ids for the affected accounts; their outstanding tokens revoked.
    ``then(conn, rotation)`` runs in the same transaction (the audit entry)."""
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        view = radius_in(conn, org_id, incident["scope"]).effective
        reason = f"incident {incident_id}"
        rotated = []
        for impact in view.subjects:
            account_id = impact.subject.account_id
            retired = parties.account(conn, org_id, account_id)["public_id"]
            parties.rotate_public_id(conn, org_id, account_id, reason=reason)
            rotated.append({"account_id": account_id, "reference": impact.subject.reference,
                            "retired_public_id": retired})
        revoked = revoke_outstanding_tokens(
            conn, org_id, [item["account_id"] for item in rotated], reason=reason)
        at = datetime.now(UTC)
        entry = {"at": at.isoformat(), "by": actor, "accounts": rotated,
                 "tokens_revoked": revoked}
        rotations = [*incident["record"].get("rotations", []), entry]
        store.update_record(conn, org_id, incident_id, {"rotations": rotations},
                            event="rotated", actor=actor, detail=entry, at=at)
        rotation = Rotation(rotated, revoked)
        if then is not None:
            then(conn, rotation)
    return rotation


def close(engine: Engine, org_id: int, incident_id: int, *, reason: str, actor: str) -> None:
    """Close the incident; it stays in the register with everything it recorded."""
    if not reason.strip():
        raise ValueError("closing an incident needs a reason")
    with transaction(engine) as conn:
        incident = store.incident(conn, org_id, incident_id, for_update=True)
        require_open(incident)
        record = incident["record"]
        store.update_record(conn, org_id, incident_id, {"facts": record["facts"]},
                            event="closed", actor=actor, detail={"reason": reason.strip()},
                            status="closed")


def all_dossiers(engine: Engine, org_id: int, now: datetime | None = None) -> list[Dossier]:
    """Every incident of the organization, for the register."""
    with engine.connect() as conn:
        return [dossier_in(conn, org_id, int(row["id"]), now)
                for row in store.all_incidents(conn, org_id)]


def generate_drafts(engine: Engine, org_id: int, incident_id: int, out: Path, *, actor: str,
                    pdf: bool = True) -> tuple[Dossier, list[DraftFile]]:
    """Write the drafts from one dossier and record in the timeline what was written."""
    d = dossier(engine, org_id, incident_id)
    files = write_drafts(d, out, pdf=pdf)
    with transaction(engine) as conn:
        store.append_event(conn, org_id, incident_id, "drafts_written",
                           {"out": str(out), "files": len(files),
                            "missing_fields": list(d.missing),
                            "sha256": {f.path: f.sha256 for f in files}}, actor=actor)
    return d, files
