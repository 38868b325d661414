"""The kill switch of an organization's sending through the application layer: read it,
pause, resume (``sealbill pause`` / ``sealbill resume``).

Invariants: pausing stops sending within one message (the sender reads the switch before each
one); pausing is open to the roles that act on runs, lifting it only to those who may approve
runs; each change is audited in its own transaction; a resume needs a reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import audit
from sealbill.app.context import READ, RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, Problem
from sealbill.store.db import read_transaction
from sealbill.store.delivery import switches


def state(engine: Engine, actor: Actor, org_id: int) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with read_transaction(engine) as conn:
        return switches.state(conn, org_id)


def pause(engine: Engine, actor: Actor, org_id: int, reason: str | None) -> dict[str, Any]:
    """Stop all sending of the organization."""
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not pause sending")
    actor.require_org(org_id)
    return _set(engine, actor, org_id, True, reason)


def resume(engine: Engine, actor: Actor, org_id: int, reason: str) -> dict[str, Any]:
    """Lift the kill switch (a halted run is released by ``sealbill resume --run``)."""
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    if not (reason or "").strip():
        raise Invalid("resume: 1 problem(s)", [Problem("reason", "give a reason")])
    return _set(engine, actor, org_id, False, reason)


def _set(engine: Engine, actor: Actor, org_id: int, paused: bool, reason: str | None
         ) -> dict[str, Any]:
    with engine.begin() as conn:
        before = switches.state(conn, org_id)
        switches.set_paused(conn, org_id, paused, actor=actor.name, reason=reason)
        after = switches.state(conn, org_id)
        audit.record(conn, actor, org_id, "sending.pause" if paused else "sending.resume",
                     "organization", "sending", before=before, after=after)
    return after
