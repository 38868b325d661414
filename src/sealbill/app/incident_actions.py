"""What an operator records on an incident from the console: the facts (cause, detection),
the decision to notify or not with its reasoning and the Art. 34 plan, and containment (the
kill switch). Each goes through the same pipeline function as the CLI (``sealbill incident
update|decide``, ``sealbill pause``), so it lands in the incident's timeline, and is audited.

Invariant: only roles that may act on runs (``runs.write`` or ``runs.approve``) record
anything here; a refused input changes nothing (the pipeline validates before writing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import audit
from sealbill.app.context import RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, NotFound, Problem
from sealbill.pipeline import incident as pipeline
from sealbill.store import incidents as store
from sealbill.store.db import transaction
from sealbill.store.incident_containment import pause_sending


def _may_act(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> None:
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not record incident decisions")
    actor.require_org(org_id)
    with engine.begin() as conn:
        try:
            store.incident(conn, org_id, incident_id)
        except LookupError:
            raise NotFound(f"incident {incident_id} not found") from None


def _audit(engine: Engine, actor: Actor, org_id: int, incident_id: int, action: str,
           after: Any) -> None:
    with engine.begin() as conn:
        audit.record(conn, actor, org_id, action, "incident", str(incident_id), after=after)


def record_facts(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
                 cause: str, detection: str) -> None:
    _may_act(engine, actor, org_id, incident_id)
    facts = {k: v.strip() for k, v in (("cause", cause), ("detection", detection))
             if v.strip()}
    if not facts:
        raise Invalid("facts: 1 problem(s)", [Problem("cause", "give the cause or how the "
                                                      "breach was detected")])
    pipeline.update(engine, org_id, incident_id, pipeline.FactsUpdate(facts=facts),
                    actor=actor.name)
    _audit(engine, actor, org_id, incident_id, "incident.update", facts)


def decide(engine: Engine, actor: Actor, org_id: int, incident_id: int, *, notify: bool,
           reason: str, communication: str | None, communication_reason: str = "",
           exemption: str | None = None) -> dict[str, Any]:
    _may_act(engine, actor, org_id, incident_id)
    try:
        decision = pipeline.decide(engine, org_id, incident_id, notify=notify, reason=reason,
                                   communication=communication or None,
                                   exemption=exemption or None,
                                   communication_reason=communication_reason,
                                   actor=actor.name)
    except ValueError as exc:
        raise Invalid("decision: 1 problem(s)", [Problem("reason", str(exc))]) from None
    _audit(engine, actor, org_id, incident_id, "incident.decide",
           {"notify": notify, "reason": reason, "communication": communication})
    return decision


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
    _audit(engine, actor, org_id, incident_id, "incident.contain", {"paused": True})
