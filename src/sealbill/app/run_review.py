"""The held-run review: what changed since the last cycle, per account, with the evidence, and
the reviewer's decision.

For each account whose recipients differ from the previous plan: the recipients before and
after, and for every added address the contact history (who changed what, when, verified how);
the account's message (invoice, outbox state) and each recipient's seal status (contact, link
and latest history event verified, or what fails), as the guard would judge it now.
``reject`` keeps the run held (nothing is sent) and records who rejected it and why; after the
cause is fixed, the run is re-planned (``sealbill run plan RUN --replan``), which judges it again.

Invariants: as for approval (:func:`sealbill.app.runs.approve`), only an authenticated operator
with the approver capability, never the run's starter, decides, and a reason is required; the
decision is in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit, ids, seal_status
from sealbill.app.context import READ, RUNS_APPROVE, Actor
from sealbill.app.errors import Forbidden, Invalid, Problem, StateError, Unauthenticated
from sealbill.app.invoices import run_row_id
from sealbill.pipeline.delivery.plan_judge import GROUP
from sealbill.store.delivery import plan_reads
from sealbill.store.delivery import plans as plan_store
from sealbill.store.schema import audit_log, billing_runs, contact_events, contacts


def review(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, ref)
        public = ids.encode(conn, org_id, "run", run_id)
        run = plan_store.run_row(conn, org_id, run_id)
        plan = plan_store.plan_row(conn, org_id, run_id)
        if plan is None:
            return {"run_id": public, "period": run["period"], "status": run["status"],
                    "started_by": run["started_by"], "plan": None, "changes": [],
                    "decisions": []}
        previous_id = plan_store.previous_plan_id(conn, org_id, str(run["period"]))
        changes = sorted(_changes(conn, org_id, int(plan["id"]), previous_id),
                         key=lambda change: change["account"])
        decisions = conn.execute(sa.select(audit_log).where(
            audit_log.c.organization_id == org_id, audit_log.c.object_id == public,
            audit_log.c.action.in_(("run.approve", "run.reject")))
            .order_by(audit_log.c.id)).all()
    report = plan["report"]
    return {"run_id": public, "period": run["period"], "status": run["status"],
            "started_by": run["started_by"], "first_cycle": previous_id is None,
            "plan": {"verdict": plan["verdict"], "approved_by": plan["approved_by"],
                     "approved_reason": plan["approved_reason"],
                     "findings": report.get("findings", []), "lines": report.get("lines", [])},
            "changes": changes,
            "decisions": [{"at": d.at, "actor": d.actor, "action": d.action,
                           "reason": (d.after or {}).get("reason")} for d in decisions]}


def _changes(conn: Any, org_id: int, plan_id: int, previous_id: int | None
             ) -> Iterator[dict[str, Any]]:
    """Each account whose recipients differ from the previous plan's (every account of the
    plan on a first cycle), read a group of accounts at a time (``plan_judge.GROUP``)."""
    plan_ids = [plan_id] if previous_id is None else [plan_id, previous_id]
    account_ids = plan_reads.plan_accounts(conn, org_id, plan_ids)
    for start in range(0, len(account_ids), GROUP):
        group = account_ids[start:start + GROUP].tolist()
        envelopes = {row["reference"]: row for row in
                     plan_reads.envelopes_of_accounts(conn, org_id, plan_id, group)}
        now = {ref: [r["email"] for r in row["recipients"]] for ref, row in envelopes.items()}
        before = {} if previous_id is None else {
            row["reference"]: [r["email"] for r in row["recipients"]] for row in
            plan_reads.envelopes_of_accounts(conn, org_id, previous_id, group)}
        for account in sorted(set(now) | set(before)):
            old, new = before.get(account, []), now.get(account, [])
            if previous_id is not None and sorted(old) == sorted(new):
                continue
            added = [e for e in new if e not in old]
            yield {"account": account, "before": old, "after": new,
                   "added": added, "removed": [e for e in old if e not in new],
                   "evidence": _history(conn, org_id, added),
                   **_message(conn, org_id, envelopes.get(account))}


def _message(conn: Any, org_id: int, envelope: Mapping[str, Any] | None) -> dict[str, Any]:
    """The account's planned message (invoice, outbox state) and the seal status of each of
    its recipients, as the guard would judge them now."""
    if envelope is None:
        return {"invoice": None, "message_status": None, "seals": []}
    planned = [(int(r["contact_id"]), str(r["email"])) for r in envelope["recipients"]]
    return {"invoice": envelope["number"], "message_status": envelope["outbox_status"],
            "seals": seal_status.recipients(conn, org_id, int(envelope["account_id"]),
                                            planned)}


def _history(conn: Any, org_id: int, emails: list[str]) -> list[dict[str, Any]]:
    if not emails:
        return []
    rows = conn.execute(
        sa.select(contact_events, contacts.c.email)
        .join(contacts, contacts.c.id == contact_events.c.contact_id)
        .where(contact_events.c.organization_id == org_id, contacts.c.email.in_(emails))
        .order_by(contact_events.c.at, contact_events.c.id)).all()
    return [{"email": r.email, "at": r.at, "event": r.event, "actor": r.actor,
             "method": r.method, "reason": r.reason, "old_value": r.old_value,
             "new_value": r.new_value} for r in rows]


def reject(engine: Engine, actor: Actor, org_id: int, ref: str, reason: str) -> dict[str, Any]:
    """Refuse a held run's plan: it stays held, nothing is sent; who and why are recorded."""
    if not actor.authenticated:
        raise Unauthenticated("rejecting a held run needs an authenticated operator")
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("rejection: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        run_id = run_row_id(conn, org_id, ref)
        run = conn.execute(sa.select(billing_runs.c.status, billing_runs.c.started_by).where(
            billing_runs.c.id == run_id)).one()
        if str(run.started_by) == actor.name:
            raise Forbidden(f"{actor.name} started this run and cannot decide on it: another "
                            "operator must review the plan")
        if run.status != "held":
            raise StateError(f"the run is {run.status}, not held: nothing to reject")
        public = ids.encode(conn, org_id, "run", run_id)
        audit.record(conn, actor, org_id, "run.reject", "run", public,
                     after={"reason": reason.strip(), "status": "held"})
    return {"run_id": public, "status": "held", "rejected_by": actor.name}
