"""What the incident commands read and report, through the application layer as every door:
the blast radius (with the ledger's own integrity check), an incident's dossier (72-hour
clock, what the notification still lacks), and the Art. 33(5) register.

Invariant: every function checks that the actor may read the organization, and names the
incident within it (another organization's incident is "not found"); nothing is written.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sealbill.app.context import READ, Actor
from sealbill.app.incidents import _row_id
from sealbill.domain.blast_radius import BlastRadius
from sealbill.incident.facts import Dossier
from sealbill.pipeline.incident import actions as pipeline
from sealbill.store.delivery.ledger import LedgerReport


def _reader(actor: Actor, org_id: int) -> None:
    actor.require(READ)
    actor.require_org(org_id)


def radius(engine: Engine, actor: Actor, org_id: int, ref: str
           ) -> tuple[BlastRadius, LedgerReport]:
    """Who received whose data (exposures judged against the links of the sending time),
    and the ledger's check: a broken chain means the radius may be incomplete."""
    _reader(actor, org_id)
    incident_id = _row_id(engine, org_id, ref)
    return pipeline.radius(engine, org_id, incident_id), pipeline.ledger_check(engine, org_id)


def dossier(engine: Engine, actor: Actor, org_id: int, ref: str) -> Dossier:
    """The incident's dossier as of now: clock, facts, severity, decision, what is missing."""
    _reader(actor, org_id)
    return pipeline.dossier(engine, org_id, _row_id(engine, org_id, ref))


def register(engine: Engine, actor: Actor, org_id: int) -> list[Dossier]:
    """Every incident of the organization, notified or not (the Art. 33(5) register)."""
    _reader(actor, org_id)
    return pipeline.all_dossiers(engine, org_id)
