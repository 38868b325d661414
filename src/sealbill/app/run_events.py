"""The webhooks and the audit entry of a pipeline stage, written in the stage's own
transaction (see :mod:`sealbill.store.stage_events`).

Invariants:
- every fact a stage publishes queues its webhook in the transaction that made it true
  (``invoice.finalized``, ``run.held``, ``run.halted``, ``guard.violation``,
  ``invoice.delivered``), once per endpoint (``event_key`` is unique), whichever door ran the
  stage (API, CLI, worker): this module subscribes when the application layer is imported;
- inside :func:`audited`, the stage's audit entry is written in the transaction that moves
  the run to one of the awaited statuses (finalize, plan, approve, send), that records the
  run's drafts (``run.start``: the rating transaction), or — one entry per chunk — that
  stores a chunk of rendered documents (``run.render``); a call that changes nothing (a rerun
  with nothing left to do) gets its entry right after, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids, webhooks
from sealbill.app.context import Actor
from sealbill.store import stage_events
from sealbill.store.schema import billing_runs, invoices


@dataclass
class StepAudit:
    """The audit entry a stage owes: ``action`` on ``run_id``, written at the first of
    ``statuses`` the run reaches (with the facts seen so far), or after the stage."""

    actor: Actor
    org_id: int
    run_id: int | None  # None: the run the stage creates (``run.start``)
    action: str
    statuses: frozenset[str]
    facts: dict[str, Any] = field(default_factory=dict)
    written: bool = False


_step: ContextVar[StepAudit | None] = ContextVar("sealbill_step_audit", default=None)


@contextmanager
def audited(engine: Engine, actor: Actor, org_id: int, run_id: int | None, action: str,
            statuses: tuple[str, ...], after: dict[str, Any]) -> Iterator[StepAudit]:
    """Run a stage whose audit entry commits with its change; ``after`` (filled in by the
    caller once the stage returned) is recorded when the stage changed nothing."""
    step = StepAudit(actor, org_id, run_id, action, frozenset(statuses))
    token = _step.set(step)
    try:
        yield step
    finally:
        _step.reset(token)
    if not step.written and run_id is not None:
        with engine.begin() as conn:
            audit.record(conn, actor, org_id, action, "run",
                         ids.encode(conn, org_id, "run", run_id), after=after)


def _on_fact(conn: Connection, org_id: int, event: str, facts: Mapping[str, Any]) -> None:
    run_id = facts.get("run_id")
    public_run = None if run_id is None else ids.encode(conn, org_id, "run", int(run_id))
    if event == stage_events.INVOICES_FINALIZED:
        _finalized(conn, org_id, list(facts["invoice_ids"]), public_run)
    elif event == stage_events.RUN_STATUS and facts["status"] in ("held", "halted"):
        webhooks.emit(conn, org_id, f"run.{facts['status']}",
                      f"run.{facts['status']}:{public_run}:{facts['reason'] or ''}"[:200],
                      {"run_id": public_run, "period": _period(conn, facts["run_id"]),
                       "reason": facts["reason"]})
    elif event == stage_events.ALERT_RECORDED and run_id is not None:
        webhooks.emit(conn, org_id, "guard.violation", f"alert:{facts['alert_id']}", {
            "run_id": public_run, "cause": facts["cause"], "message": facts["message"],
            "created_at": facts["created_at"]})
    elif event == stage_events.LEDGER_APPENDED:
        webhooks.emit(conn, org_id, "invoice.delivered", f"delivered:{facts['message_id']}", {
            "invoice_id": ids.encode(conn, org_id, "invoice", int(facts["invoice_id"])),
            "number": facts["invoice_number"], "account": facts["account_reference"],
            "recipients": facts["recipients"], "sent_at": facts["sent_at"]})
    _audit_step(conn, org_id, event, facts, public_run)


def _finalized(conn: Connection, org_id: int, invoice_ids: list[int],
               public_run: str | None) -> None:
    if not invoice_ids:
        return
    rows = conn.execute(sa.select(invoices.c.id, invoices.c.number,
                                  invoices.c.account_reference, invoices.c.total_incl_minor,
                                  invoices.c.currency)
                        .where(invoices.c.organization_id == org_id,
                               invoices.c.id.in_(invoice_ids)).order_by(invoices.c.id))
    for inv in rows:
        public = ids.encode(conn, org_id, "invoice", int(inv.id))
        webhooks.emit(conn, org_id, "invoice.finalized", f"invoice.finalized:{public}", {
            "invoice_id": public, "number": inv.number, "account": inv.account_reference,
            "total_incl_minor": inv.total_incl_minor, "currency": inv.currency,
            "run_id": public_run})


def _period(conn: Connection, run_id: Any) -> str:
    return str(conn.execute(sa.select(billing_runs.c.period)
                            .where(billing_runs.c.id == run_id)).scalar_one())


def _audit_step(conn: Connection, org_id: int, event: str, facts: Mapping[str, Any],
                public_run: str | None) -> None:
    step = _step.get()
    if step is None or step.org_id != org_id:
        return
    if event == stage_events.RUN_BILLED and step.action == "run.start" and not step.written:
        step.run_id = int(facts["run_id"])
        audit.record(conn, step.actor, org_id, step.action, "run", str(public_run),
                     after={k: v for k, v in facts.items() if k != "run_id"})
        step.written = True
        return
    if facts.get("run_id") != step.run_id:
        return
    if event == stage_events.DOCUMENTS_STORED and step.action == "run.render":
        numbers = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == org_id, invoices.c.id.in_(facts["invoice_ids"]))
            .order_by(invoices.c.number)).scalars().all()
        kind, public = ("run", str(public_run)) if public_run else (
            "invoice", ids.encode(conn, org_id, "invoice", int(facts["invoice_ids"][0])))
        audit.record(conn, step.actor, org_id, step.action, kind, public, after={
            "rendered": len(facts["invoice_ids"]),
            "first_number": numbers[0] if numbers else None,
            "last_number": numbers[-1] if numbers else None})
        step.written = True
        return
    if step.written:
        return
    if event == stage_events.INVOICES_FINALIZED:
        step.facts["finalized"] = step.facts.get("finalized", 0) + len(facts["invoice_ids"])
    elif event == stage_events.RUN_STATUS and facts["status"] in step.statuses:
        audit.record(conn, step.actor, org_id, step.action, "run", str(public_run),
                     after={**step.facts, "status": facts["status"],
                            "reason": facts["reason"]})
        step.written = True


stage_events.subscribe(_on_fact)
