"""Setting one message of a run aside, from the console (the held-run review or a guard alert),
and queueing a set-aside message again (``retry``).

The same pipeline function as ``sealbill run set-aside``
(:mod:`sealbill.pipeline.delivery.set_aside`):
the message is excluded from the run (or the guard's set-aside of it is confirmed), recorded on
the outbox row and as a resolved alert; once every guard set-aside of a halted run is confirmed,
the run goes back to ``approved`` and the next send sends the rest.

Invariants: only an authenticated operator whose role may approve runs (``runs.approve``) —
or the local administrator at the terminal (the CLI without a key) — sets or retries
a message aside, with a reason of at least three characters; the run and the invoice are looked
up in the actor's organization only (another organization's are "not found"); a refused input
changes nothing; the action is in the audit log, with who, why and whether the run was released,
written in the transaction of the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.context import RUNS_APPROVE, Actor
from sealbill.app.errors import Invalid, Problem, StateError, Unauthenticated
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.delivery import set_aside as pipeline


def _allowed(actor: Actor, what: str) -> None:
    """An operator (key or console session) whose role may approve runs, or the local
    administrator at the terminal (``local:<user>``, holding the database)."""
    if not actor.authenticated and (actor.org_id is not None or actor.channel != "cli"):
        raise Unauthenticated(f"{what} needs an authenticated operator")
    actor.require(RUNS_APPROVE)


def _run(engine: Engine, actor: Actor, org_id: int, run_ref: str) -> tuple[int, str]:
    actor.require_org(org_id)
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, run_ref)
        return run_id, ids.encode(conn, org_id, "run", run_id)


def _checked(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
             reason: str, what: str) -> tuple[int, str]:
    """The run's row id and public id, once the actor and the input passed (nothing written
    otherwise)."""
    _allowed(actor, what)
    actor.require_org(org_id)
    problems = []
    if len(reason.strip()) < 3:
        problems.append(Problem("reason", "give a reason (recorded)"))
    if not invoice.strip():
        problems.append(Problem("invoice", "name the invoice of the message"))
    if problems:
        raise Invalid(f"{what}: {len(problems)} problem(s); nothing was written", problems)
    return _run(engine, actor, org_id, run_ref)


def set_aside(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
              reason: str) -> dict[str, Any]:
    run_id, public = _checked(engine, actor, org_id, run_ref, invoice, reason, "set aside")
    try:
        with engine.begin() as conn:  # the change and its audit entry commit together
            done = pipeline.set_aside_in(conn, org_id, run_id, invoice.strip(),
                                         actor=actor.name, reason=reason.strip())
            audit.record(conn, actor, org_id, "run.set_aside", "run", public,
                         after={"invoice": invoice.strip(), "reason": reason.strip(),
                                "message_id": done["message_id"],
                                "run_released": done["run_released"]})
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None
    return {**done, "run_id": public}


def _retried(conn: Connection, actor: Actor, org_id: int, run_id: int, public: str,
             invoice: str | None, reason: str) -> dict[str, Any]:
    done = pipeline.retry_in(conn, org_id, run_id, invoice, actor=actor.name, reason=reason)
    if invoice is None and not done["queued"] and not done["skipped"]:
        raise StateError("no failed message in this run: nothing to queue again")
    audit.record(conn, actor, org_id, "run.retry", "run", public, after={
        "invoice": invoice, "reason": reason, "queued": done["queued"],
        "skipped": done["skipped"], "corrected": done.get("corrected", [])})
    return {**done, "run_id": public}


def retry(engine: Engine, actor: Actor, org_id: int, run_ref: str, invoice: str,
          reason: str) -> dict[str, Any]:
    """Queue a set-aside (or failed) message again: the next send passes it through the whole
    guard, on the data as it is then; a sent message whose bounced contact was corrected
    since goes again to that corrected address only (``sealbill run retry --invoice``,
    ``POST /v1/runs/{id}/retry``)."""
    run_id, public = _checked(engine, actor, org_id, run_ref, invoice, reason, "retry")
    try:
        with engine.begin() as conn:  # the change and its audit entry commit together
            return _retried(conn, actor, org_id, run_id, public, invoice.strip(),
                            reason.strip())
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None


def retry_failed(engine: Engine, actor: Actor, org_id: int, run_ref: str,
                 reason: str) -> dict[str, Any]:
    """Queue again every failed message of the run (retries exhausted, or refused by the
    server), each to its recipients neither delivered nor bounced; the next send passes each
    through the whole guard (``sealbill run retry RUN`` without ``--invoice``). A message
    whose recipients all bounced is skipped, with why."""
    _allowed(actor, "retry")
    run_id, public = _run(engine, actor, org_id, run_ref)  # an unknown run: not found first
    if len(reason.strip()) < 3:
        raise Invalid("retry: 1 problem(s); nothing was written",
                      [Problem("reason", "give a reason (recorded)")])
    try:
        with engine.begin() as conn:
            return _retried(conn, actor, org_id, run_id, public, None, reason.strip())
    except pipeline.SetAsideError as exc:
        raise StateError(str(exc)) from None
