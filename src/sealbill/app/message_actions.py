"""Setting one message of a run aside, from the console (the held-run review or a guard alert),
and queueing a set-aside message again (``retry``).

The same pipeline function as ``sealbill run set-aside``
(:mod:`sealbill.pipeline.delivery.set_aside`):
the message is excluded from the run (or the guard's set-aside of it is confirmed), recorded on
the outbox row and as a resolved alert; once every guard set-aside of a halted run is confirmed,
the run goes back to ``approved`` and the next send sends the rest.

Invariants: only an authenticated operator whose role may approve runs (``runs.approve``) sets
a message aside, with a reason of at least three characters; the run and the invoice are looked
up in the actor's organization only (another organization's are "not found"); a refused input
changes nothing; the action is in the audit log, with who, why and whether the run was released.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import audit, ids
from sealbill.app.context import RUNS_APPROVE, Actor
from sealbill.app.errors import Invalid, Problem, StateError, Unauthenticated
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.delivery import set_aside as pipeline


def _checked(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
             reason: str, what: str) -> tuple[int, str]:
    """The run's row id and public id, once the actor and the input passed (nothing written
    otherwise)."""
    if not actor.authenticated:
        raise Unauthenticated(f"{what} needs an authenticated operator")
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    problems = []
    if len(reason.strip()) < 3:
        problems.append(Problem("reason", "give a reason (recorded)"))
    if not invoice.strip():
        problems.append(Problem("invoice", "name the invoice of the message"))
    if problems:
        raise Invalid(f"{what}: {len(problems)} problem(s); nothing was written", problems)
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, run_ref)
        return run_id, ids.encode(conn, org_id, "run", run_id)


def set_aside(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
              reason: str) -> dict[str, Any]:
    run_id, public = _checked(engine, actor, org_id, run_ref, invoice, reason, "set aside")
    try:
        done = pipeline.set_aside(engine, org_id, run_id, invoice.strip(), actor=actor.name,
                                  reason=reason.strip())
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None
    with engine.begin() as conn:
        audit.record(conn, actor, org_id, "run.set_aside", "run", public,
                     after={"invoice": invoice.strip(), "reason": reason.strip(),
                            "message_id": done["message_id"],
                            "run_released": done["run_released"]})
    return {**done, "run_id": public}


def retry(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
          reason: str) -> dict[str, Any]:
    """Queue a set-aside (or failed) message again: the next send passes it through the whole
    guard, on the data as it is then (``sealbill run retry --invoice``)."""
    run_id, public = _checked(engine, actor, org_id, run_ref, invoice, reason, "retry")
    try:
        done = pipeline.retry(engine, org_id, run_id, invoice.strip(), actor=actor.name,
                              reason=reason.strip())
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None
    with engine.begin() as conn:
        audit.record(conn, actor, org_id, "run.retry", "run", public,
                     after={"invoice": invoice.strip(), "reason": reason.strip(),
                            "queued": done["queued"]})
    return {**done, "run_id": public}


def retry_failed(engine: Engine, actor: Actor, org_id: int, run_ref: str,
                 reason: str) -> dict[str, Any]:
    """Queue again every failed message of the run (retries exhausted, or refused by the
    server), each to its recipients neither delivered nor bounced; the next send passes each
    through the whole guard (``sealbill run retry RUN`` without ``--invoice``). A message
    whose recipients all bounced is skipped, with why."""
    if not actor.authenticated:
        raise Unauthenticated("retry needs an authenticated operator")
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    with engine.begin() as conn:  # an unknown run is not found, before any input is judged
        run_id = run_row_id(conn, org_id, run_ref)
        public = ids.encode(conn, org_id, "run", run_id)
    if len(reason.strip()) < 3:
        raise Invalid("retry: 1 problem(s); nothing was written",
                      [Problem("reason", "give a reason (recorded)")])
    try:
        done = pipeline.retry(engine, org_id, run_id, None, actor=actor.name,
                              reason=reason.strip())
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None
    if not done["queued"] and not done["skipped"]:
        raise StateError("no failed message in this run: nothing to queue again")
    with engine.begin() as conn:
        audit.record(conn, actor, org_id, "run.retry", "run", public,
                     after={"reason": reason.strip(), "queued": done["queued"],
                            "skipped": done["skipped"]})
    return {**done, "run_id": public}
