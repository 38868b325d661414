"""Plans (price versions as JSON), metrics and subscriptions with their phase history.

Decimals are stored as strings in the plan JSON, so a price like 0.000012 survives both
databases exactly. A plan version, once written, is never updated: a price change is a new
version with a later ``effective_from``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.catalog import (
    Charge,
    ChargeModel,
    ChargeProperties,
    Interval,
    Plan,
    PlanCatalog,
    Tier,
)
from sealbill.domain.subscriptions import period_containing
from sealbill.domain.taxes import VatRateClass
from sealbill.store.db import Row, ids_in, inserted_id, not_indexed
from sealbill.store.schema import metrics, plans, subscription_phases, subscriptions

_DECIMALS = ("amount", "unit_price", "package_size", "free_units", "rate", "fixed_fee")
_OPTIONAL = ("min_per_transaction", "max_per_transaction")


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def properties_to_json(p: ChargeProperties) -> dict[str, Any]:
    data: dict[str, Any] = {name: str(getattr(p, name)) for name in _DECIMALS}
    data.update({name: None if getattr(p, name) is None else str(getattr(p, name))
                 for name in _OPTIONAL})
    data["tiers"] = [
        {"up_to": None if t.up_to is None else str(t.up_to), "unit_price": str(t.unit_price),
         "flat_fee": str(t.flat_fee)}
        for t in p.tiers
    ]
    return data


def properties_from_json(data: Row) -> ChargeProperties:
    values: dict[str, Any] = {name: Decimal(str(data[name])) for name in _DECIMALS
                              if data.get(name) is not None}
    values.update({name: _dec(data.get(name)) for name in _OPTIONAL})
    values["tiers"] = tuple(
        Tier(_dec(t.get("up_to")), Decimal(str(t["unit_price"])),
             Decimal(str(t.get("flat_fee", "0"))))
        for t in data.get("tiers", ())
    )
    return ChargeProperties(**values)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "charges": [
            {"code": c.code, "model": c.model.value, "description_fr": c.description_fr,
             "description_en": c.description_en, "metric_code": c.metric_code,
             "vat_rate_class": c.vat_rate_class.value,
             "properties": properties_to_json(c.properties),
             **({"usage_interval": c.usage_interval.value} if c.usage_interval else {})}
            for c in plan.charges
        ]
    }


def plan_from_row(row: Row) -> Plan:
    charges = tuple(
        Charge(code=c["code"], model=ChargeModel(c["model"]),
               description_fr=c["description_fr"], description_en=c["description_en"],
               properties=properties_from_json(c["properties"]),
               metric_code=c.get("metric_code"),
               vat_rate_class=VatRateClass(c.get("vat_rate_class", "standard")),
               usage_interval=Interval(c["usage_interval"]) if c.get("usage_interval") else None)
        for c in row["definition"]["charges"]
    )
    return Plan(code=row["code"], name=row["name"], interval=Interval(row["interval"]),
                currency=row["currency"], version=row["version"],
                effective_from=row["effective_from"], charges=charges)


def add_plan(conn: Connection, org_id: int, plan: Plan, at: datetime) -> int:
    return inserted_id(conn.execute(sa.insert(plans).values(
        organization_id=org_id, code=plan.code, version=plan.version,
        effective_from=plan.effective_from, name=plan.name, interval=plan.interval.value,
        currency=plan.currency, definition=plan_to_json(plan), created_at=at,
    )))


def load_catalog(conn: Connection, org_id: int) -> PlanCatalog:
    """Every plan version; a version sealbill cannot read (an interval or charge model it
    does not bill) makes its plan *unavailable* with the reason, so that only the
    subscriptions on that plan are refused, not the whole run."""
    rows = conn.execute(sa.select(plans).where(plans.c.organization_id == org_id)).all()
    loaded: list[Plan] = []
    unavailable: dict[str, str] = {}
    for row in rows:
        try:
            loaded.append(plan_from_row(row._mapping))
        except (ValueError, KeyError, TypeError) as error:
            unavailable[row.code] = f"version {row.version} cannot be billed ({error})"
    return PlanCatalog([p for p in loaded if p.code not in unavailable], unavailable)


def add_metric(conn: Connection, org_id: int, code: str, name: str, aggregation: str,
               field: str | None = None, *, group_by: str | None = None,
               allows_negative: bool = False, min_value: Decimal | None = None,
               max_value: Decimal | None = None, decimal_places: int | None = None) -> None:
    conn.execute(sa.insert(metrics).values(organization_id=org_id, code=code, name=name,
                                           aggregation=aggregation, field=field,
                                           group_by=group_by, allows_negative=allows_negative,
                                           min_value=min_value, max_value=max_value,
                                           decimal_places=decimal_places))


def load_metrics(conn: Connection, org_id: int) -> dict[str, Row]:
    rows = conn.execute(sa.select(metrics).where(metrics.c.organization_id == org_id))
    return {row.code: row._mapping for row in rows}


def add_subscription(conn: Connection, org_id: int, account_id: int, external_id: str,
                     plan_code: str, started_on: date, at: datetime, *,
                     trial_ends_on: date | None = None) -> int:
    sub_id = inserted_id(conn.execute(sa.insert(subscriptions).values(
        organization_id=org_id, account_id=account_id, external_id=external_id,
        started_on=started_on, trial_ends_on=trial_ends_on, created_at=at,
    )))
    conn.execute(sa.insert(subscription_phases).values(
        organization_id=org_id, subscription_id=sub_id, plan_code=plan_code,
        start_on=started_on, created_at=at))
    return sub_id


def add_subscriptions_bulk(conn: Connection, org_id: int, rows: Sequence[Row],
                           at: datetime) -> None:
    """Insert many (account_id, external_id, plan_code, started_on[, trial_ends_on])."""
    if not rows:
        return
    result = conn.execute(
        sa.insert(subscriptions).returning(subscriptions.c.id, sort_by_parameter_order=True),
        [{"organization_id": org_id, "account_id": r["account_id"],
          "external_id": r["external_id"], "started_on": r["started_on"],
          "trial_ends_on": r.get("trial_ends_on"), "created_at": at} for r in rows],
    )
    ids = [int(row.id) for row in result]
    conn.execute(sa.insert(subscription_phases), [
        {"organization_id": org_id, "subscription_id": sub_id, "plan_code": r["plan_code"],
         "start_on": r["started_on"], "created_at": at}
        for sub_id, r in zip(ids, rows, strict=True)
    ])


def change_plan(conn: Connection, org_id: int, subscription_id: int, plan_code: str,
                on: date, at: datetime) -> None:
    """Close the open phase on ``on`` and open one on ``plan_code`` (history is kept)."""
    conn.execute(sa.update(subscription_phases).where(
        subscription_phases.c.organization_id == org_id,
        subscription_phases.c.subscription_id == subscription_id,
        subscription_phases.c.end_on.is_(None)).values(end_on=on))
    conn.execute(sa.insert(subscription_phases).values(
        organization_id=org_id, subscription_id=subscription_id, plan_code=plan_code,
        start_on=on, created_at=at))


def period_end(conn: Connection, org_id: int, subscription_id: int, on: date) -> date:
    """The end of the subscription's billing period containing ``on``: its periods start on
    the 1st of the month it started in (``pipeline.rate``) and last its current plan's
    interval — a year on a yearly plan, not the end of the month."""
    row = conn.execute(
        sa.select(subscriptions.c.started_on, subscription_phases.c.plan_code)
        .join(subscription_phases, subscription_phases.c.subscription_id == subscriptions.c.id)
        .where(subscriptions.c.organization_id == org_id, subscriptions.c.id == subscription_id)
        .order_by(subscription_phases.c.start_on.desc()).limit(1)).one()
    interval = conn.execute(
        sa.select(plans.c.interval).where(plans.c.organization_id == org_id,
                                          plans.c.code == row.plan_code)
        .order_by(plans.c.effective_from.desc()).limit(1)).scalar()
    started: date = row.started_on
    anchor = date(started.year, started.month, 1)
    known = str(interval) in {i.value for i in Interval}  # an unknown one: refused at billing
    return period_containing(anchor, Interval(str(interval)) if known else Interval.MONTH,
                             on).end


def cancel(conn: Connection, org_id: int, subscription_id: int, *, on: date,
           at_period_end: bool) -> None:
    """Cancel on ``on`` (the open phase closed that day), or at the end of the billing period
    containing ``on`` (:func:`period_end`)."""
    ends_on = period_end(conn, org_id, subscription_id, on) if at_period_end else on
    conn.execute(sa.update(subscription_phases).where(
        subscription_phases.c.organization_id == org_id,
        subscription_phases.c.subscription_id == subscription_id,
        subscription_phases.c.end_on.is_(None)).values(end_on=ends_on))
    values: dict[str, Any] = {"cancel_at_period_end": at_period_end, "ends_on": ends_on}
    conn.execute(sa.update(subscriptions).where(
        subscriptions.c.organization_id == org_id,
        subscriptions.c.id == subscription_id).values(**values))


def phases_by_account(conn: Connection, org_id: int, account_ids: Iterable[int],
                      period_start: date, period_end: date) -> dict[int, list[Row]]:
    """Subscription phases overlapping the period, grouped by account."""
    ids = list(account_ids)
    result: dict[int, list[Row]] = {}
    # SQLite takes a bounded number of parameters; PostgreSQL takes the ids as one array.
    step = max(len(ids), 1) if conn.dialect.name == "postgresql" else 500
    for start in range(0, len(ids), step):
        rows = conn.execute(
            sa.select(subscriptions.c.account_id, subscriptions.c.id.label("subscription_id"),
                      subscriptions.c.external_id, subscriptions.c.started_on,
                      subscriptions.c.trial_ends_on, subscriptions.c.ends_on,
                      subscriptions.c.cancel_at_period_end,
                      subscription_phases.c.plan_code, subscription_phases.c.start_on,
                      subscription_phases.c.end_on)
            .join(subscription_phases,
                  subscription_phases.c.subscription_id == subscriptions.c.id)
            .where(not_indexed(subscriptions.c.organization_id) == org_id,
                   ids_in(conn, subscriptions.c.account_id, ids[start:start + step]),
                   subscription_phases.c.start_on < period_end,
                   sa.or_(subscription_phases.c.end_on.is_(None),
                          subscription_phases.c.end_on > period_start))
            .order_by(subscriptions.c.id, subscription_phases.c.start_on)
        )
        for row in rows:
            result.setdefault(int(row.account_id), []).append(row._mapping)
    return result
