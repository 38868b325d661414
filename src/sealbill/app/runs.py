"""Billing runs: start (bill a period), finalize, render, plan, approve, send, status, list.

Four-eyes by identity: a held run is approved by an authenticated operator (an API key, in the
CLI too) whose identity differs from the run's starter (``started_by`` records the actor's
name, ``operator:<email>`` or ``local:<user>``). The pipeline stages keep their own
transactions; each step's audit entry and webhooks are written inside them
(:mod:`sealbill.app.run_events`), so they commit with the state change they record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill import settings
from sealbill.app import ids, run_events
from sealbill.app.context import READ, RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import (
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    StateError,
    Unauthenticated,
)
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.billing.finalize import draft_ids, finalize_run
from sealbill.pipeline.billing.invoice import BillingError, account_count, bill_period
from sealbill.pipeline.billing.render import RenderError, render_run, unrendered_ids
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.plan import PlanError, approve_run, plan_run, plan_summary
from sealbill.store import queries
from sealbill.store.billing.exchange_rates import MissingExchangeRate
from sealbill.store.schema import billing_runs, invoices

RUN_REF = re.compile(r"\d+|\d{4}-\d{2}")  # a run id or a period; anything else: a number


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


def start(engine: Engine, actor: Actor, org_id: int, period: str, *, dry_run: bool = False,
          workers: int | None = None, on_progress: Callable[[int], None] | None = None
          ) -> dict[str, Any]:
    """Bill the period: one draft per account (``dry_run`` writes nothing). The audit entry
    commits with the drafts (the rating transaction); ``on_progress`` gets the accounts rated
    a chunk at a time (the CLI's bar)."""
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    after: dict[str, Any] = {}
    try:
        with run_events.audited(engine, actor, org_id, None, "run.start", (), after):
            result = bill_period(engine, org_id, period, actor=actor.name, dry_run=dry_run,
                                 workers=workers, on_progress=on_progress)
    except BillingError as exc:
        if "period" in str(exc):
            raise Invalid(str(exc), [Problem("period", str(exc))]) from None
        raise StateError(str(exc), [Problem("", p) for p in exc.problems]) from None
    data = result.as_dict()
    if result.run_id is not None:
        with engine.begin() as conn:
            data["run_id"] = ids.encode(conn, org_id, "run", int(result.run_id))
    return data


def account_total(engine: Engine, actor: Actor, org_id: int, period: str) -> int:
    """How many accounts a run of ``period`` rates (a progress bar's total)."""
    actor.require(READ)
    actor.require_org(org_id)
    try:
        return account_count(engine, org_id, period)
    except BillingError as exc:
        raise Invalid(str(exc), [Problem("period", str(exc))]) from None


def finalize(engine: Engine, actor: Actor, org_id: int, ref: str,
             issue_date: date | None = None,
             on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Number the run's drafts (gapless), immutable from then on; a missing exchange rate
    refuses it (nothing numbered). The audit entry commits with the run marked finalized."""
    run_id = _resolve(engine, actor, org_id, ref, RUNS_WRITE)
    after: dict[str, Any] = {}
    with run_events.audited(engine, actor, org_id, run_id, "run.finalize", ("finalized",),
                            after):
        try:
            done = finalize_run(engine, org_id, run_id, issue_date=issue_date,
                                on_progress=on_progress)
        except MissingExchangeRate as exc:
            raise StateError("invoices in another currency with VAT need an exchange rate "
                             "(sealbill import rates); nothing was finalized",
                             [Problem("", p) for p in exc.problems]) from None
        except LookupError as exc:
            raise StateError(str(exc)) from None
        numbers = [n for _, n in done]
        after.update({"finalized": len(done), "first_number": numbers[0] if numbers else None,
                      "last_number": numbers[-1] if numbers else None})
    return {**_view(engine, org_id, run_id), **after}


def drafts_left(engine: Engine, actor: Actor, org_id: int, ref: str) -> int:
    """How many drafts the run still has to finalize (a progress bar's total)."""
    run_id = _resolve(engine, actor, org_id, ref, READ)
    with engine.begin() as conn:
        return len(draft_ids(conn, org_id, run_id))


def _render_targets(engine: Engine, actor: Actor, org_id: int, ref: str
                    ) -> tuple[int | None, list[int] | None]:
    """(run, None) for a run (public id, id or period); (its run, [invoice]) for an
    invoice or credit note number."""
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    with engine.begin() as conn:
        if ref.startswith("run_") or RUN_REF.fullmatch(ref):
            return run_row_id(conn, org_id, ref), None
        try:
            invoice_id = queries.invoice_id_by_number(conn, org_id, ref)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        run_id = conn.execute(sa.select(invoices.c.run_id).where(
            invoices.c.id == invoice_id)).scalar()
        return (None if run_id is None else int(run_id)), [invoice_id]


def to_render(engine: Engine, actor: Actor, org_id: int, ref: str) -> int:
    """How many documents of the run (or the one invoice) are not rendered yet."""
    run_id, invoice_ids = _render_targets(engine, actor, org_id, ref)
    return len(unrendered_ids(engine, org_id, run_id, invoice_ids))


def render(engine: Engine, actor: Actor, org_id: int, ref: str, *, workers: int | None = 1,
           files_dir: Path | None = None, on_progress: Callable[[int], None] | None = None
           ) -> dict[str, Any]:
    """Render what is not rendered yet of a run, or of one invoice (``ref`` a number); in
    this process by default (a request thread must not fork a pool). Documents are
    immutable: what is rendered is left as it is. Each stored chunk commits with its own
    ``run.render`` audit entry."""
    run_id, invoice_ids = _render_targets(engine, actor, org_id, ref)
    after: dict[str, Any] = {"rendered": 0}
    try:
        with run_events.audited(engine, actor, org_id, run_id, "run.render", (), after):
            after["rendered"] = render_run(engine, org_id, run_id,
                                           files_dir or settings.files_dir(None),
                                           invoice_ids=invoice_ids, workers=workers,
                                           on_progress=on_progress)
    except RenderError as exc:
        raise StateError(str(exc), [Problem("", p) for p in exc.problems]) from None
    if run_id is None:
        return {"run_id": None, "rendered": after["rendered"]}
    return {**_view(engine, org_id, run_id), "rendered": after["rendered"]}


def plan(engine: Engine, actor: Actor, org_id: int, ref: str, *, replan: bool = False,
         policy: dict[str, Any] | None = None, canary_share: float = 0.01,
         on_progress: Callable[[int], None] | None = None,
         on_total: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Plan the delivery; ``policy`` overrides thresholds (e.g. ``{"first_cycle": "hold"}``).
    The audit entry commits with the run held or approved."""
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
            plan_run(engine, org_id, run_id, actor=actor.name, replan=replan, policy=rules,
                     canary_share=canary_share, on_progress=on_progress, on_total=on_total)
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


def show(engine: Engine, actor: Actor, org_id: int, ref: str, *, label: str | None = None
         ) -> dict[str, Any]:
    """The run's delivery state (``control.status``: outbox counts, every recipient not
    delivered with its next step, set-asides, alerts, exit code); ``label`` is how the next
    steps name the run (the CLI's argument)."""
    run_id = _resolve(engine, actor, org_id, ref, READ)
    data = control.status(engine, org_id, run_id, label)
    with engine.begin() as conn:
        data["run_id"] = ids.encode(conn, org_id, "run", run_id)
    return data


def queue_progress(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """``{"queue": progress}`` for a run in the workers' hands; nothing on SQLite or for a
    run of the embedded mode."""
    from sealbill.app import distributed

    found = distributed.queue_of(engine, org_id, _resolve(engine, actor, org_id, ref, READ))
    return {} if found is None else {"queue": found}


def plan_report(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """The run's delivery plan as planned: verdict, approval, envelopes, archive copy, the
    report's lines, and how its mail will be signed."""
    from sealbill.app.run_sends import signing

    run_id = _resolve(engine, actor, org_id, ref, READ)
    try:
        summary = plan_summary(engine, org_id, run_id)
    except (PlanError, LookupError) as exc:
        raise StateError(str(exc)) from None
    return {**summary, "signing": signing(engine, org_id)}


def list_runs(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    """Every run of the organization, by period (the console's list)."""
    return page_runs(engine, actor, org_id, limit=None)["items"]  # type: ignore[no-any-return]


def page_runs(engine: Engine, actor: Actor, org_id: int, *, limit: int | None = 100,
              cursor: str | None = None) -> dict[str, Any]:
    """The runs by period, a page at a time (``cursor``: the period the previous page ended
    with, its ``next_cursor``; None at the end: nothing is silently left out)."""
    actor.require(READ)
    actor.require_org(org_id)
    query = sa.select(billing_runs).where(billing_runs.c.organization_id == org_id)
    if cursor:
        query = query.where(billing_runs.c.period > cursor)
    query = query.order_by(billing_runs.c.period)
    with engine.begin() as conn:
        rows = conn.execute(query if limit is None else query.limit(limit + 1)).all()
        items = [{"run_id": ids.encode(conn, org_id, "run", int(r.id)), "period": r.period,
                  "status": r.status, "started_by": r.started_by, "created_at": r.created_at}
                 for r in (rows if limit is None else rows[:limit])]
    more = limit is not None and len(rows) > limit
    return {"items": items, "next_cursor": items[-1]["period"] if more and items else None}
