"""Subscriptions: create, change plan (now or at period end), cancel (now or at period end),
list per account.

The billing core does the money: a plan change closes one phase and opens the next, and the
next invoice credits the unused days of the old plan and charges the new one
(:mod:`sealbill.domain.subscriptions`). Invariants here: the plan exists and is priced in the
account's currency; an archived account gets no new subscription; a cancelled subscription
neither changes plan nor cancels again; billing periods are calendar months, so "at period
end" is the 1st of the next month; every change is audited with before and after.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.accounts import account_row
from sealbill.app.catalog import plan_code
from sealbill.app.common import check_if_match
from sealbill.app.context import ACCOUNTS_WRITE, READ, Actor
from sealbill.app.errors import Invalid, NotFound, Problem, StateError
from sealbill.inputs.models import parse
from sealbill.inputs.subscriptions import CancelIn, PlanChangeIn, SubscriptionIn
from sealbill.store.billing import catalog as store
from sealbill.store.schema import accounts, plans, subscription_phases, subscriptions


def sub_row(conn: Connection, org_id: int, ref: str) -> Any:
    """A subscription by public id (``sub_…``) or external id."""
    if ref.startswith("sub_"):
        condition = subscriptions.c.id == ids.decode(conn, org_id, "subscription", ref)
    else:
        condition = subscriptions.c.external_id == ref
    row = conn.execute(sa.select(subscriptions).where(
        subscriptions.c.organization_id == org_id, condition)).first()
    if row is None:
        raise NotFound(f"subscription {ref!r} not found")
    return row._mapping


def view(conn: Connection, org_id: int, row: Any) -> dict[str, Any]:
    phases = conn.execute(sa.select(subscription_phases).where(
        subscription_phases.c.organization_id == org_id,
        subscription_phases.c.subscription_id == row["id"])
        .order_by(subscription_phases.c.start_on, subscription_phases.c.id)).all()
    account = conn.execute(sa.select(accounts.c.reference, accounts.c.public_id).where(
        accounts.c.id == row["account_id"])).one()
    current = [p.plan_code for p in phases if p.end_on is None]
    return {"id": ids.encode(conn, org_id, "subscription", int(row["id"])),
            "external_id": row["external_id"], "account": account.reference,
            "account_id": account.public_id, "started_on": row["started_on"],
            "trial_ends_on": row["trial_ends_on"], "ends_on": row["ends_on"],
            "cancel_at_period_end": bool(row["cancel_at_period_end"]),
            "plan": current[-1] if current else phases[-1].plan_code,
            "phases": [{"plan": p.plan_code, "start_on": p.start_on, "end_on": p.end_on}
                       for p in phases]}


def _plan_head(conn: Connection, org_id: int, code: str) -> Any:
    return conn.execute(sa.select(plans).where(plans.c.organization_id == org_id,
                                               plans.c.code == code)
                        .order_by(plans.c.version)).first()._mapping  # type: ignore[union-attr]


def _write(actor: Actor, org_id: int) -> None:
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)


def create(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    _write(actor, org_id)
    sub = parse(SubscriptionIn, data, "subscription")
    with engine.begin() as conn:
        account = account_row(conn, org_id, sub.account)
        if account["archived_at"] is not None:
            raise StateError(f"account {account['reference']!r} is archived")
        code = plan_code(conn, org_id, sub.plan)
        plan = _plan_head(conn, org_id, code)
        if plan["currency"] != account["currency"]:
            raise Invalid("subscription: 1 problem(s); nothing was written", [Problem(
                "plan", f"plan {code!r} is priced in {plan['currency']}, account "
                f"{account['reference']!r} is billed in {account['currency']}")])
        external_id = sub.external_id or "sub-" + secrets.token_hex(6)
        if conn.execute(sa.select(subscriptions.c.id).where(
                subscriptions.c.organization_id == org_id,
                subscriptions.c.external_id == external_id)).first():
            raise Invalid("subscription: 1 problem(s)",
                          [Problem("external_id", f"{external_id!r} is already used")])
        trial_days = sub.trial_days if sub.trial_days is not None else int(
            plan["definition"].get("trial_days", 0))
        trial_end = sub.started_on + timedelta(days=trial_days) if trial_days else None
        store.add_subscription(conn, org_id, int(account["id"]), external_id, code,
                               sub.started_on, datetime.now(UTC), trial_ends_on=trial_end)
        result = view(conn, org_id, sub_row(conn, org_id, external_id))
        audit.record(conn, actor, org_id, "subscription.create", "subscription",
                     result["id"], after=result)
    return result


def change_plan(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any, *,
                if_match: str | None = None) -> dict[str, Any]:
    """Switch to another plan on a day (today by default) or at the end of the period; the
    next invoice prorates by days. With ``if_match`` (an ETag read before), only if nobody
    changed the subscription since (checked in the change's transaction)."""
    _write(actor, org_id)
    change = parse(PlanChangeIn, data, "plan change")
    today = datetime.now(UTC).date()
    with engine.begin() as conn:
        row = sub_row(conn, org_id, ref)
        before = view(conn, org_id, row)
        check_if_match(if_match, before)
        if row["ends_on"] is not None:
            raise StateError(f"subscription {ref!r} is cancelled (ends {row['ends_on']})")
        code = plan_code(conn, org_id, change.plan)
        if code == before["plan"]:
            raise StateError(f"subscription {ref!r} is already on plan {code!r}")
        account = conn.execute(sa.select(accounts).where(
            accounts.c.id == row["account_id"])).one()._mapping
        if _plan_head(conn, org_id, code)["currency"] != account["currency"]:
            raise Invalid("plan change: 1 problem(s)", [Problem(
                "plan", f"plan {code!r} is not priced in {account['currency']}")])
        on = change.on or today
        if change.at_period_end:
            on = store.period_end(conn, org_id, int(row["id"]), on)
        last_start = max(p["start_on"] for p in before["phases"])
        if on <= last_start:
            raise Invalid("plan change: 1 problem(s)", [Problem(
                "on", f"must be after the current phase's start ({last_start})")])
        store.change_plan(conn, org_id, int(row["id"]), code, on, datetime.now(UTC))
        after = view(conn, org_id, row)
        audit.record(conn, actor, org_id, "subscription.change_plan", "subscription",
                     after["id"], before={"plan": before["plan"], "phases": before["phases"]},
                     after={"plan": code, "on": on, "phases": after["phases"]})
    return after


def cancel(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any, *,
           if_match: str | None = None) -> dict[str, Any]:
    """Cancel at the end of the period (default) or on a day (an immediate cancellation
    credits the unused days on the next run); ``if_match`` as for :func:`change_plan`."""
    _write(actor, org_id)
    request = parse(CancelIn, data, "cancellation")
    today = datetime.now(UTC).date()
    with engine.begin() as conn:
        row = sub_row(conn, org_id, ref)
        check_if_match(if_match, view(conn, org_id, row))
        if row["ends_on"] is not None:
            raise StateError(f"subscription {ref!r} is already cancelled "
                             f"(ends {row['ends_on']})")
        view(conn, org_id, row)
        on = request.on or today
        if on < row["started_on"]:
            raise Invalid("cancellation: 1 problem(s)",
                          [Problem("on", f"before the start ({row['started_on']})")])
        store.cancel(conn, org_id, int(row["id"]), on=on, at_period_end=request.at_period_end)
        after = view(conn, org_id, sub_row(conn, org_id, str(row["external_id"])))
        audit.record(conn, actor, org_id, "subscription.cancel", "subscription", after["id"],
                     before={"ends_on": None}, after={"ends_on": after["ends_on"],
                                                      "at_period_end": request.at_period_end})
    return after


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        return view(conn, org_id, sub_row(conn, org_id, ref))


def _of_organization(conn: Connection, org_id: int, account_ref: str | None) -> Any:
    """The organization's subscriptions (one account's, when ``account_ref`` names one)."""
    query = sa.select(subscriptions).where(subscriptions.c.organization_id == org_id)
    if account_ref:
        query = query.where(subscriptions.c.account_id ==
                            account_row(conn, org_id, account_ref)["id"])
    return query


def page_subscriptions(engine: Engine, actor: Actor, org_id: int, *,
                       account_ref: str | None = None, limit: int = 100,
                       cursor: str | None = None) -> dict[str, Any]:
    """Subscriptions in the order they were created, a page at a time (``next_cursor`` until
    the end: nothing is silently left out)."""
    from sealbill.app.audit import page

    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = _of_organization(conn, org_id, account_ref)
        if cursor:
            query = query.where(subscriptions.c.id > ids.decode(conn, org_id, "subscription",
                                                                cursor))
        rows = conn.execute(query.order_by(subscriptions.c.id).limit(limit + 1)).all()
        items = [view(conn, org_id, r._mapping) for r in rows[:limit]]
    return page(items, limit, len(rows) > limit)


def list_subscriptions(engine: Engine, actor: Actor, org_id: int,
                       account_ref: str | None = None) -> list[dict[str, Any]]:
    """Every subscription (of one account): the console's account page."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = _of_organization(conn, org_id, account_ref)
        rows = conn.execute(query.order_by(subscriptions.c.external_id)).all()
        return [view(conn, org_id, r._mapping) for r in rows]
