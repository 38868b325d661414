"""Usage events: record one, list, void one with a reason.

Invariants: the same event id with the same payload is stored once (a replay answers
``duplicate``), with another payload it is a :class:`Conflict` (as the batch import); the
metric must exist and the account must not be archived; a voided event is never deleted — it
keeps its values plus who voided it, when and why, and the rating reads skip it
(``store/billing/usage.py``), so one bad row never blocks a run; every record and void is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.accounts import account_row
from sealbill.app.audit import page
from sealbill.app.context import READ, USAGE_WRITE, Actor
from sealbill.app.errors import Conflict, Invalid, NotFound, Problem, StateError
from sealbill.inputs.models import parse
from sealbill.inputs.usage import MetricRule, UsageEventIn, VoidIn, rule_problems
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.schema import accounts, usage_events


def view(conn: Connection, org_id: int, row: Any) -> dict[str, Any]:
    return {"id": ids.encode(conn, org_id, "usage", int(row.id)), "event_id": row.event_id,
            "account": row.reference, "metric": row.metric_code,
            "timestamp": row.occurred_at,
            "value": None if row.value is None else str(row.value),
            "properties": row.properties or {}, "voided_at": row.voided_at,
            "voided_by": row.voided_by, "void_reason": row.void_reason}


def _select() -> sa.Select[Any]:
    return sa.select(usage_events, accounts.c.reference).join(
        accounts, accounts.c.id == usage_events.c.account_id)


def event_row(conn: Connection, org_id: int, ref: str) -> Any:
    """An event by public id (``use_…``) or by its client event id."""
    if ref.startswith("use_"):
        condition = usage_events.c.id == ids.decode(conn, org_id, "usage", ref)
    else:
        condition = usage_events.c.event_id == ref
    row = conn.execute(_select().where(usage_events.c.organization_id == org_id,
                                       condition)).first()
    if row is None:
        raise NotFound(f"usage event {ref!r} not found")
    return row


def record(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    """Store one event; ``duplicate`` is True when the same event was already stored."""
    actor.require(USAGE_WRITE)
    actor.require_org(org_id)
    event = parse(UsageEventIn, data, "usage event")
    with engine.begin() as conn:
        account = account_row(conn, org_id, event.account)
        metric = catalog_store.load_metrics(conn, org_id).get(event.metric)
        if metric is None:
            problems = [Problem("metric", f"unknown metric {event.metric!r}")]
        else:  # the rule a file's row meets (inputs/usage.py)
            problems = [Problem(field, message) for field, message in rule_problems(
                event.metric, event.value, event.properties, MetricRule.of(metric))]
        if problems:
            raise Invalid(f"usage event {event.event_id!r}: {len(problems)} problem(s); "
                          "nothing was written", problems)
        if account["archived_at"] is not None:
            raise StateError(f"account {account['reference']!r} is archived")
        moment = event.timestamp.astimezone(UTC)
        value = None if event.value is None else str(event.value)
        existing = conn.execute(_select().where(usage_events.c.organization_id == org_id,
                                                usage_events.c.event_id == event.event_id)
                                ).first()
        if existing is not None:
            same = (int(existing.account_id) == int(account["id"]) and
                    existing.metric_code == event.metric and existing.occurred_at == moment and
                    _dec(existing.value) == _dec(value) and
                    (existing.properties or {}) == event.properties)
            if not same:
                raise Conflict(f"usage event {event.event_id!r} exists with another payload",
                               [Problem("event_id", "already used with another payload")])
            return {**view(conn, org_id, existing), "duplicate": True}
        conn.execute(sa.insert(usage_events).values(
            organization_id=org_id, account_id=account["id"], event_id=event.event_id,
            metric_code=event.metric, occurred_at=moment, value=value,
            properties=dict(sorted(event.properties.items())) or None))
        result = view(conn, org_id, event_row(conn, org_id, event.event_id))
        audit.record(conn, actor, org_id, "usage.record", "usage", result["id"], after=result)
    return {**result, "duplicate": False}


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def void(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any) -> dict[str, Any]:
    """Void one event with a reason: kept, marked, excluded from rating from now on (issued
    invoices never change; correct one with a credit note)."""
    actor.require(USAGE_WRITE)
    actor.require_org(org_id)
    request = parse(VoidIn, data, "void")
    with engine.begin() as conn:
        row = event_row(conn, org_id, ref)
        if row.voided_at is not None:
            raise StateError(f"usage event {ref!r} was already voided ({row.void_reason})")
        conn.execute(sa.update(usage_events).where(
            usage_events.c.organization_id == org_id, usage_events.c.id == row.id)
            .values(voided_at=datetime.now(UTC), voided_by=actor.name,
                    void_reason=request.reason))
        after = view(conn, org_id, event_row(conn, org_id, str(row.event_id)))
        audit.record(conn, actor, org_id, "usage.void", "usage", after["id"],
                     before={"voided_at": None}, after={"voided_at": after["voided_at"],
                                                        "reason": request.reason})
    return after


def list_events(engine: Engine, actor: Actor, org_id: int, *, account: str | None = None,
                metric: str | None = None, since: datetime | None = None,
                until: datetime | None = None, include_voided: bool = True,
                limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    """A page of events in storage order; ``cursor`` is the last event's public id."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = _select().where(usage_events.c.organization_id == org_id)
        if account:
            query = query.where(usage_events.c.account_id ==
                                account_row(conn, org_id, account)["id"])
        if metric:
            query = query.where(usage_events.c.metric_code == metric)
        if since:
            query = query.where(usage_events.c.occurred_at >= since)
        if until:
            query = query.where(usage_events.c.occurred_at < until)
        if not include_voided:
            query = query.where(usage_events.c.voided_at.is_(None))
        if cursor:
            query = query.where(usage_events.c.id > ids.decode(conn, org_id, "usage", cursor))
        rows = conn.execute(query.order_by(usage_events.c.id).limit(limit + 1)).all()
        items = [view(conn, org_id, r) for r in rows[:limit]]
    return page(items, limit, len(rows) > limit)
