"""Billing runs: start (bill a period), finalize, render, plan, approve, send, status, list.

Four-eyes by identity: a held run is approved by an authenticated operator (an API key, in the
CLI too) whose identity differs from the run's starter (``started_by`` records the actor's
name, ``operator:<email>`` or ``local:<user>``). The pipeline stages keep their own
transactions; each step's audit entry and webhooks are written inside them
(:mod:`sealbill.app.run_events`), so they commit with the state change they record.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill import settings
from sealbill.app import audit, ids, run_events
from sealbill.app.context import READ, RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, Problem, StateError, Unauthenticated
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import BillingError, bill_period
from sealbill.pipeline.billing.render import RenderError, render_run
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.plan import PlanError, approve_run, plan_run, plan_summary
from sealbill.store.schema import billing_runs


def _view(engine: Engine, org_id: int, run_id: int) -> dict[str, Any]:
    data = control.status(engine, org_id, run_id)
    with engine.begin() as conn:
        data["run_id"] = ids.encode(conn, org_id, "run", run_id)
    return data


def _resolve(engine: Engine, actor: Actor, org_id: int, ref: str, capability: str) -> int:
    actor.require(capability)
    actor.require_org(org_id)
    with engine.begin() as conn:
        return run_row_id(conn, org_id, ref)


def audit_step(engine: Engine, actor: Actor, org_id: int, run_id: int, action: str,
           after: Any) -> None:
    with engine.begin() as conn:
        audit.record(conn, actor, org_id, action, "run",
                     ids.encode(conn, org_id, "run", run_id), after=after)


def start(engine: Engine, actor: Actor, org_id: int, period: str, *, dry_run: bool = False
          ) -> dict[str, Any]:
    """Bill the period: one draft per account (``dry_run`` writes nothing)."""
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    try:
        result = bill_period(engine, org_id, period, actor=actor.name, dry_run=dry_run)
    except BillingError as exc:
        if "period" in str(exc):
            raise Invalid(str(exc), [Problem("period", str(exc))]) from None
        raise StateError(str(exc), [Problem("", p) for p in exc.problems]) from None
    data = result.as_dict()
    if result.run_id is not None:
        with engine.begin() as conn:
            data["run_id"] = ids.encode(conn, org_id, "run", int(result.run_id))
        audit_step(engine, actor, org_id, int(result.run_id), "run.start",
               {k: v for k, v in data.items() if k != "previews"})
    return data


def finalize(engine: Engine, actor: Actor, org_id: int, ref: str,
             issue_date: date | None = None) -> dict[str, Any]:
    run_id = _resolve(engine, actor, org_id, ref, RUNS_WRITE)
    after: dict[str, Any] = {}
    with run_events.audited(engine, actor, org_id, run_id, "run.finalize", ("finalized",),
                            after):
        try:
            done = finalize_run(engine, org_id, run_id, issue_date=issue_date)
        except LookupError as exc:
            raise StateError(str(exc)) from None
        numbers = [n for _, n in done]
        after.update({"finalized": len(done), "first_number": numbers[0] if numbers else None,
                      "last_number": numbers[-1] if numbers else None})
    return {**_view(engine, org_id, run_id), **after}


def render(engine: Engine, actor: Actor, org_id: int, ref: str, *, workers: int | None = 1
           ) -> dict[str, Any]:
    """Render the run's documents (in this process by default: a request thread must not
    fork a pool)."""
    run_id = _resolve(engine, actor, org_id, ref, RUNS_WRITE)
    try:
        count = render_run(engine, org_id, run_id, settings.files_dir(None), workers=workers)
    except RenderError as exc:
        raise StateError(str(exc), [Problem("", p) for p in exc.problems]) from None
    audit_step(engine, actor, org_id, run_id, "run.render", {"rendered": count})
    return {**_view(engine, org_id, run_id), "rendered": count}


def plan(engine: Engine, actor: Actor, org_id: int, ref: str, *, replan: bool = False,
         policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plan the delivery; ``policy`` overrides thresholds (e.g. ``{"first_cycle": "hold"}``)."""
    from sealbill.domain.delivery_plan import DeliveryPolicy

    run_id = _resolve(engine, actor, org_id, ref, RUNS_WRITE)
    try:
        rules = DeliveryPolicy.from_mapping(policy) if policy else None
    except (ValueError, TypeError) as exc:
        raise Invalid(f"policy: {exc}", [Problem("policy", str(exc))]) from None
    after: dict[str, Any] = {}
    with run_events.audited(engine, actor, org_id, run_id, "run.plan", ("held", "approved"),
                            after):
        try:
            plan_run(engine, org_id, run_id, actor=actor.name, replan=replan, policy=rules)
            summary = plan_summary(engine, org_id, run_id)
        except (PlanError, LookupError) as exc:
            raise StateError(str(exc)) from None
        after.update({"verdict": summary["verdict"], "envelopes": len(summary["envelopes"]),
                      "report": summary["report"].get("lines", [])})
    return {**_view(engine, org_id, run_id), **after}


def approve(engine: Engine, actor: Actor, org_id: int, ref: str, reason: str
            ) -> dict[str, Any]:
    """Approve a held run: only an authenticated operator, never the run's starter."""
    if not actor.authenticated:
        raise Unauthenticated("approving a held run needs an operator's API key "
                              "(--key or SEALBILL_API_KEY): the four-eyes rule is by identity")
    run_id = _resolve(engine, actor, org_id, ref, RUNS_APPROVE)
    with engine.begin() as conn:
        started_by = conn.execute(sa.select(billing_runs.c.started_by).where(
            billing_runs.c.id == run_id)).scalar_one()
    if str(started_by) == actor.name:
        raise Forbidden(f"{actor.name} started this run and cannot approve it: another "
                        "operator must review the plan")
    with run_events.audited(engine, actor, org_id, run_id, "run.approve", ("approved",),
                            {"reason": reason}):
        try:
            approve_run(engine, org_id, run_id, actor=actor.name, reason=reason)
        except PlanError as exc:
            raise StateError(str(exc)) from None
    return _view(engine, org_id, run_id)


def send(engine: Engine, actor: Actor, org_id: int, ref: str, *, max_attempts: int = 5,
         backoff: float = 30.0) -> dict[str, Any]:
    """Send the run with the SMTP settings of the environment (``SEALBILL_SMTP_*``)."""
    from sealbill.mail import config as mail_config
    from sealbill.mail.smtp import SmtpSender
    from sealbill.pipeline.delivery.send import SendError, SendOptions, send_run
    from sealbill.store.delivery.send_lock import RunBusy

    run_id = _resolve(engine, actor, org_id, ref, RUNS_WRITE)
    try:
        smtp = mail_config.smtp_config()
    except mail_config.ConfigError as exc:
        raise Invalid(str(exc), [Problem("smtp", str(exc))]) from None
    options = SendOptions(max_attempts=max_attempts, backoff_seconds=backoff)
    after: dict[str, Any] = {}
    with run_events.audited(engine, actor, org_id, run_id, "run.send",
                            ("sent", "incomplete", "halted"), after):
        try:
            report = send_run(engine, org_id, run_id, transport=SmtpSender(smtp),
                              signer=None, options=options,
                              transport_factory=lambda: SmtpSender(smtp))
        except (SendError, RunBusy) as exc:
            raise StateError(str(exc)) from None
        after.update({"status": report.status, "stopped": report.stopped,
                      "outbox": report.counts, "violations": report.violations})
    return {**_view(engine, org_id, run_id), **after}


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    return _view(engine, org_id, _resolve(engine, actor, org_id, ref, READ))


def list_runs(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(billing_runs).where(
            billing_runs.c.organization_id == org_id).order_by(billing_runs.c.period)).all()
        return [{"run_id": ids.encode(conn, org_id, "run", int(r.id)), "period": r.period,
                 "status": r.status, "started_by": r.started_by, "created_at": r.created_at}
                for r in rows]
