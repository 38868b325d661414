"""``/v1/incidents``: open, list, read (clock, blast radius, timeline), record facts and
containment steps, assess, decide, correct a link, rotate ids, contain (kill switch), drafts,
close."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sealbill.api import schemas_incidents as schemas
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.api.routes_setup import _public
from sealbill.app import incidents
from sealbill.app.incident_inputs import (
    AssessIn,
    DecisionIn,
    IncidentIn,
    IncidentUpdateIn,
    LinkCorrectionIn,
    ReasonIn,
)

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, tags=["incidents"])


def _inc(value: str) -> str:
    return _public(value, "inc_")


@router.get("/incidents", response_model=list[schemas.IncidentSummary])
def list_incidents(actor: ActorDep, engine: EngineDep) -> Any:
    """Every incident of the organization (the Art. 33(5) register), newest first."""
    return incidents.list_incidents(engine, actor, org(actor))


@router.post("/incidents", response_model=schemas.Incident, status_code=201)
def open_incident(body: IncidentIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Open an incident (queues the ``incident.opened`` webhook in the same transaction);
    ``pause_sending`` turns the kill switch on at once."""
    if body.run_id is not None:
        _public(body.run_id, "run_")
    return incidents.open_incident(engine, actor, org(actor), body)


@router.get("/incidents/{incident_id}", response_model=schemas.Incident)
def get_incident(incident_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """The 72-hour clock, the blast radius as corrected, facts, measures and timeline."""
    return incidents.show(engine, actor, org(actor), _inc(incident_id))


@router.post("/incidents/{incident_id}/updates", response_model=schemas.Incident)
def update_incident(incident_id: str, body: IncidentUpdateIn, actor: ActorDep,
                    engine: EngineDep) -> Any:
    """Record facts, containment steps (``measures_taken``), proposed measures and the
    notification's progress; lists are appended to."""
    return incidents.update(engine, actor, org(actor), _inc(incident_id), body)


@router.post("/incidents/{incident_id}/assess", response_model=schemas.Assessment)
def assess_incident(incident_id: str, body: AssessIn, actor: ActorDep,
                    engine: EngineDep) -> Any:
    """Severity by the ENISA method (SE = DPC x EI + CB), proposed from the blast radius;
    every changed input needs its justification."""
    return incidents.assess(engine, actor, org(actor), _inc(incident_id), body)


@router.post("/incidents/{incident_id}/decide", response_model=schemas.Decision)
def decide_incident(incident_id: str, body: DecisionIn, actor: ActorDep,
                    engine: EngineDep) -> Any:
    """Record the decision to notify the supervisory authority or not, with its reasoning
    and the communication to the data subjects (Art. 33(5), Art. 34)."""
    return incidents.decide(engine, actor, org(actor), _inc(incident_id), body)


@router.post("/incidents/{incident_id}/correct-link", response_model=schemas.Incident)
def correct_link(incident_id: str, body: LinkCorrectionIn, actor: ActorDep,
                 engine: EngineDep) -> Any:
    """Mark a contact <-> account link as wrong (or right) over a window, retroactively;
    the incident's corrected blast radius uses it at once."""
    return incidents.correct_link(engine, actor, org(actor), _inc(incident_id), body)


@router.post("/incidents/{incident_id}/rotate", response_model=schemas.Rotation)
def rotate_ids(incident_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """New public ids for the affected accounts (the old ones answer 410 Gone); their
    outstanding tokens and links revoked."""
    return incidents.rotate(engine, actor, org(actor), _inc(incident_id))


@router.post("/incidents/{incident_id}/contain", response_model=schemas.Incident)
def contain_incident(incident_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """Pause all sending of the organization because of this incident (the kill switch)."""
    return incidents.contain(engine, actor, org(actor), _inc(incident_id))


@router.post("/incidents/{incident_id}/drafts", response_model=schemas.Drafts)
def incident_drafts(incident_id: str, actor: ActorDep, engine: EngineDep) -> Any:
    """Write the drafts (Art. 33 notification, Art. 34 letters, deletion requests, phishing
    warning; French and English, Markdown) from the record as it is now."""
    return incidents.drafts(engine, actor, org(actor), _inc(incident_id))


@router.post("/incidents/{incident_id}/close", response_model=schemas.Incident)
def close_incident(incident_id: str, body: ReasonIn, actor: ActorDep,
                   engine: EngineDep) -> Any:
    """Close the incident; it stays in the register."""
    return incidents.close(engine, actor, org(actor), _inc(incident_id), body.reason)
