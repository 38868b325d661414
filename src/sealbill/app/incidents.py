"""Incidents through the application layer (the HTTP API's ``/v1/incidents``): open, list,
read (72-hour clock, blast radius, timeline), record facts and containment steps, assess the
severity, decide on notifying, correct a link, rotate the affected accounts' ids, write the
drafts, contain (the kill switch), close.

Invariants:
- every function checks the actor's role and organization first; an incident is named by its
  opaque public id (``inc_…``), which decodes only for its own organization (another
  organization's incident is "not found");
- opening writes the incident, its audit entry and the ``incident.opened`` webhook in one
  transaction (all or nothing); the other actions go through the same pipeline functions as
  ``sealbill incident …`` (one transaction each, its timeline event included), then audit;
- a value the pipeline refuses (a naive or future time, an empty reason) is :class:`Invalid`
  naming the field, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids, incident_actions, records, webhooks
from sealbill.app.context import READ, RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, NotFound, Problem, StateError
from sealbill.app.incident_inputs import (
    AssessIn,
    DecisionIn,
    IncidentIn,
    IncidentUpdateIn,
    LinkCorrectionIn,
)
from sealbill.inputs.models import parse
from sealbill.pipeline.incident import actions as pipeline
from sealbill.store.incident import incidents as store
from sealbill.store.parties import records as parties

T = TypeVar("T")


def _act(actor: Actor, org_id: int) -> None:
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not act on incidents")
    actor.require_org(org_id)


def _row_id(engine: Engine, org_id: int, ref: str) -> int:
    """The incident's row id, or :class:`NotFound`; ``ref`` is its public id (``inc_…``), or
    the number the CLI prints (the API takes public ids only)."""
    with engine.begin() as conn:
        incident_id = int(ref) if ref.isdigit() else ids.decode(conn, org_id, "incident", ref)
        try:
            store.incident(conn, org_id, incident_id)
        except LookupError:
            raise NotFound(f"incident {ref if ref.isdigit() else repr(ref)} not found"
                           ) from None
    return incident_id


def _checked(field: str, fn: Callable[[], T]) -> T:
    """``fn()``, its refusals (``ValueError``) as :class:`Invalid` on ``field``."""
    try:
        return fn()
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except ValueError as exc:
        message = str(exc)
        if "closed" in message:
            raise StateError(message) from None
        raise Invalid(f"incident: {message}", [Problem(field, message)]) from None


def open_incident(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    """Open an incident scoped by window, run and/or message ids (a message must match all);
    with ``pause_sending``, the kill switch goes on in the same transaction."""
    _act(actor, org_id)
    request = parse(IncidentIn, data, "incident")
    with engine.begin() as conn:
        run_id = (ids.decode(conn, org_id, "run", request.run_id)
                  if request.run_id else None)
    if (request.window_from is None) != (request.window_to is None):
        raise Invalid("incident: 1 problem(s)", [Problem(
            "window_to", "give both window_from and window_to, or neither")])
    window = ((request.window_from, request.window_to)
              if request.window_from and request.window_to else None)
    scope = _checked("window_from", lambda: pipeline.Scope(
        window=window, run_id=run_id, message_ids=tuple(request.message_ids)))

    def opened(conn: Connection, incident_id: int) -> None:
        public = ids.encode(conn, org_id, "incident", incident_id)
        webhooks.emit(conn, org_id, "incident.opened", f"incident:{incident_id}", {
            "incident_id": public, "source": "operator", "title": request.title,
            "aware_at": request.aware_at, "sending_paused": request.pause_sending})
        audit.record(conn, actor, org_id, "incident.open", "incident", public,
                     after={"title": request.title, "aware_at": request.aware_at,
                            "scope": scope.to_json() | {"run_id": request.run_id},
                            "sending_paused": request.pause_sending})

    incident_id = _checked("aware_at", lambda: pipeline.open_incident(
        engine, org_id, title=request.title, aware_at=request.aware_at, scope=scope,
        actor=actor.name, pause=request.pause_sending, description=request.description,
        then=opened))
    return _detail(engine, actor, org_id, incident_id)


def list_incidents(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require(READ)
    actor.require_org(org_id)
    found = records.incident_list(engine, actor, org_id)
    with engine.begin() as conn:
        return [{**item, "id": ids.encode(conn, org_id, "incident", item["id"])}
                for item in found]


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """Status and 72-hour clock, the blast radius as corrected, facts, containment, timeline."""
    actor.require(READ)
    actor.require_org(org_id)
    return _detail(engine, actor, org_id, _row_id(engine, org_id, ref))


def _detail(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> dict[str, Any]:
    detail = records.incident_detail(engine, actor, org_id, incident_id)
    with engine.begin() as conn:
        public = ids.encode(conn, org_id, "incident", incident_id)
        row = store.incident(conn, org_id, incident_id)
        detail["radius"] = _public_ids(conn, org_id, detail["radius"])
    status = detail["status"]
    status["incident"] = {**status["incident"], "id": public}
    return {"id": public, "title": row["title"], "state": row["status"],
            "aware_at": row["aware_at"], "opened_by": row["opened_by"],
            "measures": dict(row["record"].get("measures") or {}), **detail}


def _public_ids(conn: Connection, org_id: int, value: Any) -> Any:
    """``value`` with every ``account_id`` and ``contact_id`` row id replaced by its public id
    (``acc_…``, ``con_…``): the API never shows a database counter."""
    if isinstance(value, list):
        return [_public_ids(conn, org_id, item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "account_id" and isinstance(item, int):
            item = parties.account(conn, org_id, item)["public_id"]
        elif key == "contact_id" and isinstance(item, int):
            item = ids.encode(conn, org_id, "contact", item)
        out[key] = _public_ids(conn, org_id, item)
    return out


def update(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any) -> dict[str, Any]:
    """Record facts, containment steps and measures (lists are appended to), and the
    notification's progress."""
    _act(actor, org_id)
    request = parse(IncidentUpdateIn, data, "incident update")
    incident_id = _row_id(engine, org_id, ref)
    facts = {key: value for key in pipeline.FACT_FIELDS
             if (value := getattr(request, key)) is not None}
    for key in ("breach_start", "breach_end"):
        if key in facts:
            facts[key] = getattr(request, key).isoformat()
    change = pipeline.FactsUpdate(
        facts=facts, nature=tuple(request.nature), consequences=tuple(request.consequences),
        measures_taken=tuple(request.measures_taken),
        measures_proposed=tuple(request.measures_proposed),
        deletion_requested_at=request.deletion_requested_at,
        customers_warned_at=request.customers_warned_at,
        notification_type=request.notification_type, notified_at=request.notified_at,
        delay_reason=request.delay_reason)
    with incident_actions.audited(engine, actor, org_id, incident_id, "incident.update",
                                  request.model_dump(exclude_defaults=True)):
        _checked("measures_taken", lambda: pipeline.update(engine, org_id, incident_id,
                                                           change, actor=actor.name))
    return _detail(engine, actor, org_id, incident_id)


def contain(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """The kill switch, because of this incident (recorded in its timeline)."""
    _act(actor, org_id)
    incident_id = _row_id(engine, org_id, ref)
    incident_actions.contain(engine, actor, org_id, incident_id)
    return _detail(engine, actor, org_id, incident_id)


def close(engine: Engine, actor: Actor, org_id: int, ref: str, reason: str
          ) -> dict[str, Any]:
    """Close the incident; it stays in the register with everything it recorded."""
    _act(actor, org_id)
    incident_id = _row_id(engine, org_id, ref)
    with incident_actions.audited(engine, actor, org_id, incident_id, "incident.close",
                                  {"reason": reason}):
        _checked("reason", lambda: pipeline.close(engine, org_id, incident_id,
                                                  reason=reason, actor=actor.name))
    return _detail(engine, actor, org_id, incident_id)


def drafts(engine: Engine, actor: Actor, org_id: int, ref: str, *, out: Path | None = None,
           pdf: bool = False) -> dict[str, Any]:
    """The Art. 33 notification, Art. 34 letters, deletion requests and phishing warning
    (French and English): as Markdown texts in the answer, or (``out``, the CLI) written as
    files into that folder, with PDFs if ``pdf``; recorded in the timeline, audited in the
    same transaction."""
    _act(actor, org_id)
    incident_id = _row_id(engine, org_id, ref)
    with TemporaryDirectory() as tmp:
        folder = out or Path(tmp)
        with incident_actions.audited(engine, actor, org_id, incident_id, "incident.drafts",
                                      {"out": str(out) if out else None}):
            dossier, files = pipeline.generate_drafts(engine, org_id, incident_id, folder,
                                                      actor=actor.name, pdf=pdf and bool(out))
        listed = [{"path": f.path, "kind": f.kind, "lang": f.lang, "format": f.format,
                   "addressee": f.addressee, "sha256": f.sha256} for f in files]
        if out is None:
            for item in listed:
                item["text"] = (folder / item["path"]).read_text(encoding="utf-8")
    return {"files": listed, "missing_fields": list(dossier.missing)}


def assess(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any) -> dict[str, Any]:
    """Severity by the ENISA method, proposed from the blast radius, with the operator's
    justified changes; recorded in the timeline and audited."""
    _act(actor, org_id)
    request = parse(AssessIn, data, "severity")
    incident_id = _row_id(engine, org_id, ref)
    changes: dict[str, str] = dict(request.changes.items())
    justifications: dict[str, str] = dict(request.justifications.items())
    return _checked("changes", lambda: incident_actions.assess(
        engine, actor, org_id, incident_id, changes=changes, justifications=justifications,
        recipients_known=request.recipients_known))


def decide(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any) -> dict[str, Any]:
    """The decision to notify the authority or not, with its reasoning (Art. 33(5))."""
    _act(actor, org_id)
    request = parse(DecisionIn, data, "decision")
    incident_id = _row_id(engine, org_id, ref)
    return _checked("reason", lambda: incident_actions.decide(
        engine, actor, org_id, incident_id, notify=request.notify, reason=request.reason,
        communication=request.communication, exemption=request.exemption,
        communication_reason=request.communication_reason))


def correct_link(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any
                 ) -> dict[str, Any]:
    """A link judged (not) entitled retroactively: the incident as corrected by it."""
    _act(actor, org_id)
    request = parse(LinkCorrectionIn, data, "link correction")
    incident_id = _row_id(engine, org_id, ref)
    _checked("contact", lambda: incident_actions.correct_link(
        engine, actor, org_id, incident_id, contact=request.contact, account=request.account,
        entitled=request.entitled, reason=request.reason, valid_from=request.valid_from,
        valid_to=request.valid_to))
    return _detail(engine, actor, org_id, incident_id)


def rotate(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """New public ids for the affected accounts (shown with the ids they retire); their
    outstanding tokens and links revoked."""
    _act(actor, org_id)
    incident_id = _row_id(engine, org_id, ref)
    rotation = _checked("", lambda: incident_actions.rotate(engine, actor, org_id,
                                                            incident_id))
    with engine.begin() as conn:
        accounts = _public_ids(conn, org_id, rotation.accounts)
    return {"accounts": accounts, "tokens_revoked": rotation.tokens_revoked}
