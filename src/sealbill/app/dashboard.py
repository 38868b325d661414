"""Read models of the web console: the dashboard figures and the progress of a run.

Read-only: nothing here writes. Every query is scoped to the actor's organization and every
function requires the ``read`` capability first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import distributed, ids
from sealbill.app.context import READ, Actor
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.delivery import control
from sealbill.store.delivery import outbox_runs
from sealbill.store.schema import (
    alerts,
    billing_runs,
    delivery_envelopes,
    delivery_ledger,
    incidents,
    invoices,
    outbox,
)


def _read(actor: Actor, org_id: int) -> None:
    actor.require(READ)
    actor.require_org(org_id)


def overview(engine: Engine, actor: Actor, org_id: int) -> dict[str, Any]:
    """Per cycle: invoices issued and amount billed (per currency); deliveries, bounces, held
    runs, open alerts and incidents."""
    _read(actor, org_id)
    with engine.begin() as conn:
        cycles = conn.execute(
            sa.select(billing_runs.c.period, invoices.c.currency,
                      sa.func.count(invoices.c.id), sa.func.sum(invoices.c.total_incl_minor))
            .join(invoices, invoices.c.run_id == billing_runs.c.id)
            .where(billing_runs.c.organization_id == org_id,
                   invoices.c.status != "draft", invoices.c.kind == "invoice")
            .group_by(billing_runs.c.period, invoices.c.currency)
            .order_by(billing_runs.c.period)).all()

        def count(query: Any) -> int:
            return int(conn.execute(query).scalar() or 0)

        figures = {
            "deliveries": count(sa.select(sa.func.count()).select_from(delivery_ledger).where(
                delivery_ledger.c.organization_id == org_id)),
            "bounces": count(sa.select(sa.func.count()).select_from(outbox).where(
                outbox.c.organization_id == org_id, outbox.c.status == "failed_permanent")),
            "held_runs": count(sa.select(sa.func.count()).select_from(billing_runs).where(
                billing_runs.c.organization_id == org_id, billing_runs.c.status == "held")),
            "open_alerts": count(sa.select(sa.func.count()).select_from(alerts).where(
                alerts.c.organization_id == org_id, alerts.c.resolved_at.is_(None))),
            "open_incidents": count(sa.select(sa.func.count()).select_from(incidents).where(
                incidents.c.organization_id == org_id, incidents.c.status != "closed")),
        }
    return {"cycles": [{"period": p, "currency": c, "invoices": int(n), "amount_minor": int(s)}
                       for p, c, n, s in cycles], **figures}


def chart_bars(cycles: list[dict[str, Any]], height: int = 120) -> list[dict[str, Any]]:
    """Bars of a simple chart of the amount billed per cycle (one currency per bar), scaled
    to ``height``; the template draws them as SVG rectangles."""
    top = max((c["amount_minor"] for c in cycles), default=0) or 1
    return [{**c, "height": max(1, round(c["amount_minor"] * height / top)), "index": i}
            for i, c in enumerate(cycles)]


def runs(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    """Every run, newest first, with its outbox counts per state (and, for a run in the
    workers' hands, its queue jobs done / total / failed)."""
    _read(actor, org_id)
    queued = distributed.queue_totals(engine, org_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(billing_runs).where(
            billing_runs.c.organization_id == org_id)
            .order_by(billing_runs.c.period.desc())).all()
        return [{"run_id": ids.encode(conn, org_id, "run", int(r.id)), "period": r.period,
                 "status": r.status, "started_by": r.started_by, "created_at": r.created_at,
                 "outbox": outbox_runs.counts(conn, org_id, int(r.id)),
                 "queue": queued.get(int(r.id))} for r in rows]


def progress(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """A run's state while it sends: counts per state, the canary's outcome, throughput."""
    _read(actor, org_id)
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, ref)
        public = ids.encode(conn, org_id, "run", run_id)
        canary = conn.execute(
            sa.select(outbox.c.status, sa.func.count())
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
                   delivery_envelopes.c.is_canary.is_(True))
            .group_by(outbox.c.status)).all()
        first, last, sent = conn.execute(
            sa.select(sa.func.min(outbox.c.sent_at), sa.func.max(outbox.c.sent_at),
                      sa.func.count(outbox.c.sent_at))
            .where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id)).one()
    data = control.status(engine, org_id, run_id)
    canary_counts = {str(s): int(n) for s, n in canary}
    data["run_id"] = public
    data["canary"] = {"counts": canary_counts, "result": _canary_result(canary_counts)}
    data["total"] = sum(data["outbox"].values())
    data["throughput"] = _rate(first, last, int(sent))
    data["done"] = data["status"] in ("sent", "halted", "held")
    data["queue"] = distributed.queue_of(engine, org_id, run_id)
    if data["queue"] and any(s["waiting"] or s["running"] for s in data["queue"]["stages"]):
        data["done"] = data["status"] == "held"  # the workers still have the run's jobs
    return data


def _canary_result(counts: dict[str, int]) -> str:
    if not counts:
        return "none"
    if any(s in counts for s in ("held", "failed_permanent")):
        return "failed"
    if set(counts) == {"sent"}:
        return "passed"
    return "pending"


def _rate(first: datetime | None, last: datetime | None, sent: int) -> float | None:
    """Messages per second between the first and the last message sent, if measurable."""
    if first is None or last is None or sent < 2:
        return None
    seconds = (last - first).total_seconds()
    return round(sent / seconds, 1) if seconds > 0 else None
