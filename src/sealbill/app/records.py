"""Console read models of the safety records: guard alerts, the delivery ledger, incidents.

Reading only, except :func:`incident_drafts` (which writes the drafts and records that in the
incident's timeline, as ``sealbill incident drafts`` does) and :func:`resolve_alert` (a resume
of the run, through the same control as ``sealbill resume``). Every query names the
organization; every function checks the actor's capability first.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit, ids, incident_actions, ledger
from sealbill.app.context import READ, RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, NotFound, Problem, StateError
from sealbill.app.incident_actions import audit_incident
from sealbill.incident.radius_report import radius_to_dict
from sealbill.incident.summary import status_dict
from sealbill.pipeline.delivery import control
from sealbill.pipeline.incident import actions as incidents_pipeline
from sealbill.store.delivery import switches
from sealbill.store.incident import incidents as incident_store
from sealbill.store.schema import alerts, delivery_envelopes, invoices, outbox

LEDGER_LIMIT = 200


def _read(actor: Actor, org_id: int) -> None:
    actor.require(READ)
    actor.require_org(org_id)


def alert_list(engine: Engine, actor: Actor, org_id: int, *, open_only: bool = True
               ) -> list[dict[str, Any]]:
    _read(actor, org_id)
    with engine.begin() as conn:
        # The stopped message (invoice, outbox state), so the alert can set it aside.
        query = (sa.select(alerts, invoices.c.number, outbox.c.status.label("message_status"))
                 .outerjoin(delivery_envelopes, delivery_envelopes.c.id == alerts.c.envelope_id)
                 .outerjoin(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
                 .outerjoin(outbox, outbox.c.envelope_id == delivery_envelopes.c.id)
                 .where(alerts.c.organization_id == org_id))
        if open_only:
            query = query.where(alerts.c.resolved_at.is_(None))
        rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(200)).all()
        return [{"id": int(r.id), "cause": r.cause, "message": r.message,
                 "evidence": r.evidence, "created_at": r.created_at,
                 "resolved_at": r.resolved_at, "resolved_by": r.resolved_by,
                 "invoice": r.number, "message_status": r.message_status,
                 "run_id": None if r.run_id is None else ids.encode(conn, org_id, "run",
                                                                    int(r.run_id))}
                for r in rows]


def resume_run(engine: Engine, actor: Actor, org_id: int, run_ref: str, reason: str
               ) -> dict[str, Any]:
    """Resume a halted run after its cause was fixed: its alerts resolved, the stopped
    messages given one more pass through the guard (``sealbill resume``)."""
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("resume: 1 problem(s)", [Problem("reason", "give a reason")])
    from sealbill.app.invoices import run_row_id

    try:
        with engine.begin() as conn:  # the release and its audit entry commit together
            run_id = run_row_id(conn, org_id, run_ref)
            out = control.resume_in(conn, org_id, actor=actor.name, reason=reason,
                                    run_id=run_id)
            audit.record(conn, actor, org_id, "run.resume", "run", run_ref,
                         after={"reason": reason, **out})
    except control.ControlError as exc:
        raise StateError(str(exc)) from None
    return out


def ledger_search(engine: Engine, actor: Actor, org_id: int, *, address: str = "",
                  account: str = "", invoice: str = "", since: datetime | None = None,
                  until: datetime | None = None) -> list[dict[str, Any]]:
    """Ledger rows matching every criterion given (newest first, at most 200): who received
    which invoice, of which data subject, with which categories of personal data."""
    return list(ledger.search(engine, actor, org_id, address=address, account=account,
                              invoice=invoice, since=since, until=until,
                              limit=LEDGER_LIMIT)["items"])


def incident_list(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    _read(actor, org_id)
    with engine.begin() as conn:
        return [{"id": int(r["id"]), "title": r["title"], "status": r["status"],
                 "aware_at": r["aware_at"], "opened_by": r["opened_by"]}
                for r in incident_store.all_incidents(conn, org_id)]


def _incident_id(engine: Engine, org_id: int, incident_id: int) -> int:
    with engine.begin() as conn:
        try:
            incident_store.incident(conn, org_id, incident_id)
        except LookupError:
            raise NotFound(f"incident {incident_id} not found") from None
    return incident_id


def incident_detail(engine: Engine, actor: Actor, org_id: int, incident_id: int
                    ) -> dict[str, Any]:
    """Status (72-hour clock, what the notification lacks), the blast radius as corrected,
    and the timeline."""
    _read(actor, org_id)
    dossier = incidents_pipeline.dossier(engine, org_id, _incident_id(engine, org_id,
                                                                      incident_id))
    radius = radius_to_dict(dossier.radius)
    return {"status": status_dict(dossier), "radius": radius["as_corrected"],
            "messages_in_scope": radius["messages_in_scope"],
            "facts": dict(dossier.record.get("facts") or {}),
            "severity": dossier.record.get("severity"),
            "measures": dict(dossier.record.get("measures") or {}),
            "notification": dict(dossier.record.get("notification") or {}),
            "closed": dossier.incident["status"] == "closed",
            "containment": dossier.record.get("containment"),
            "sending_paused": _paused(engine, org_id),
            "revocations": list(dossier.record.get("revocations") or []),
            "rotations": list(dossier.record.get("rotations") or []),
            "scope": dict(dossier.incident["scope"] or {}),
            "events": [{"at": e["at"], "event": e["event"], "actor": e["actor"]}
                       for e in dossier.events]}


def _paused(engine: Engine, org_id: int) -> bool:
    """The kill switch as it is now (an incident's pause may have been lifted since)."""
    with engine.begin() as conn:
        return switches.is_paused(conn, org_id)


def correct_link(engine: Engine, actor: Actor, org_id: int, incident_id: int, contact: str,
                 account: str, reason: str) -> None:
    """The operator's retroactive judgement: this contact was never entitled to this account's
    invoices (kept with its reason and author, used by the blast radius)."""
    if not (actor.can(RUNS_APPROVE) or actor.can(RUNS_WRITE)):
        raise Forbidden(f"role {actor.role!r} may not correct links")
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("correction: 1 problem(s)", [Problem("reason", "give a reason")])
    _incident_id(engine, org_id, incident_id)
    incident_actions.correct_link(engine, actor, org_id, incident_id, contact=contact.strip(),
                                  account=account.strip(), entitled=False,
                                  reason=reason.strip())


def incident_drafts(engine: Engine, actor: Actor, org_id: int, incident_id: int
                    ) -> tuple[str, bytes]:
    """The drafts (Art. 33 notification, Art. 34 letters, deletion requests, phishing warning;
    French and English; Markdown and PDF) as one zip, recorded in the timeline."""
    _read(actor, org_id)
    _incident_id(engine, org_id, incident_id)
    with tempfile.TemporaryDirectory() as tmp:
        _, files = incidents_pipeline.generate_drafts(engine, org_id, incident_id, Path(tmp),
                                                      actor=actor.name)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for f in files:
                archive.write(Path(tmp) / f.path, f.path)
    audit_incident(engine, actor, org_id, incident_id, "incident.drafts",
                   {"files": len(files)})
    return f"incident-{incident_id}-drafts.zip", buffer.getvalue()
