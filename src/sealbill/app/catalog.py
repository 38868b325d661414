"""The catalog: metrics, plans and their versioned prices.

Invariants: a metric code and a plan code are unique in an organization; a price version is
never edited — a price change is a new version effective from a later date than the last one;
every version is checked by :func:`sealbill.domain.catalog.validate_plan` (charge models,
tiers, metrics that exist) before anything is written; every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.context import CATALOG_WRITE, READ, Actor
from sealbill.app.errors import Conflict, Invalid, NotFound, Problem
from sealbill.domain.catalog import (
    Charge,
    ChargeModel,
    ChargeProperties,
    Interval,
    Plan,
    Tier,
    validate_plan,
)
from sealbill.domain.taxes import VatRateClass
from sealbill.inputs.catalog import ChargeIn, MetricIn, PlanIn, PriceVersionIn
from sealbill.inputs.models import parse
from sealbill.store.billing import catalog as store
from sealbill.store.schema import metrics, plans

_PROPERTY_FIELDS = ("amount", "unit_price", "package_size", "free_units", "rate", "fixed_fee",
                    "min_per_transaction", "max_per_transaction")


_LIMITS = ("allows_negative", "min_value", "max_value", "decimal_places")


def metric_view(conn: Connection, org_id: int, row: Any) -> dict[str, Any]:
    return {"id": ids.encode(conn, org_id, "metric", int(row["id"])), "code": row["code"],
            "name": row["name"], "aggregation": row["aggregation"], "field": row["field"],
            **limits_view(row)}


def limits_view(row: Any) -> dict[str, Any]:
    """A metric's range and precision as shown (decimals as strings, absent as None)."""
    view = {name: row[name] for name in _LIMITS}
    view["allows_negative"] = bool(view["allows_negative"])
    for name in ("min_value", "max_value"):
        view[name] = None if view[name] is None else format(Decimal(view[name]), "f")
    return view


def list_metrics(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(metrics).where(metrics.c.organization_id == org_id)
                            .order_by(metrics.c.code)).all()
        return [metric_view(conn, org_id, r._mapping) for r in rows]


def create_metric(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    metric = parse(MetricIn, data, "metric")
    if metric.aggregation == "unique_count" and not metric.field:
        raise Invalid("metric: 1 problem(s); nothing was written",
                      [Problem("field", "unique_count needs the property to count")])
    with engine.begin() as conn:
        return create_metric_in(conn, actor, org_id, metric)


def create_metric_in(conn: Connection, actor: Actor, org_id: int, metric: MetricIn
                     ) -> dict[str, Any]:
    if metric.code in store.load_metrics(conn, org_id):
        raise Conflict(f"metric {metric.code!r} exists", [Problem("code", "already used")])
    store.add_metric(conn, org_id, metric.code, metric.name, metric.aggregation, metric.field,
                     **metric.limits())
    result = metric_view(conn, org_id, store.load_metrics(conn, org_id)[metric.code])
    audit.record(conn, actor, org_id, "metric.create", "metric", result["id"], after=result)
    return result


def update_metric(engine: Engine, actor: Actor, org_id: int, code: str, data: Any
                  ) -> dict[str, Any]:
    """Change a metric's name or its range and precision (its code, aggregation and field are
    what past usage means; new limits govern later imports, ``sealbill check`` reports stored
    values outside them)."""
    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    metric = parse(MetricIn, data, "metric")
    with engine.begin() as conn:
        return update_metric_in(conn, actor, org_id, code, metric)


def update_metric_in(conn: Connection, actor: Actor, org_id: int, code: str, metric: MetricIn
                     ) -> dict[str, Any]:
    current = store.load_metrics(conn, org_id).get(code)
    if current is None:
        raise NotFound(f"metric {code!r} not found")
    before = metric_view(conn, org_id, current)
    if (metric.aggregation, metric.field) != (current["aggregation"], current["field"]):
        raise Conflict(f"metric {code!r}: aggregation and field cannot change (usage "
                       "already recorded means what they said); create a new metric",
                       [Problem("aggregation", "cannot change")])
    conn.execute(sa.update(metrics).where(metrics.c.organization_id == org_id,
                                          metrics.c.code == code)
                 .values(name=metric.name, **metric.limits()))
    after = {**before, "name": metric.name, **limits_view(metric.limits())}
    audit.record(conn, actor, org_id, "metric.update", "metric", before["id"],
                 before=before, after=after)
    return after


def _charge(c: ChargeIn) -> Charge:
    props: dict[str, Any] = {name: getattr(c, name) for name in _PROPERTY_FIELDS
                             if getattr(c, name) is not None}
    props["tiers"] = tuple(Tier(t.up_to, t.unit_price, t.flat_fee) for t in c.tiers)
    return Charge(c.code, ChargeModel(c.model), c.description_fr, c.description_en,
                  ChargeProperties(**props), metric_code=c.metric,
                  vat_rate_class=VatRateClass(c.vat_rate_class))


def _plan(plan: PlanIn | dict[str, Any], version: int, price: PriceVersionIn) -> Plan:
    head = plan if isinstance(plan, dict) else plan.model_dump(exclude={"prices"})
    return Plan(head["code"], head["name"], Interval(head["interval"]), head["currency"],
                version, price.effective_from, tuple(_charge(c) for c in price.charges))


def _check(conn: Connection, org_id: int, plan: Plan, where: str) -> None:
    problems = validate_plan(plan, set(store.load_metrics(conn, org_id)))
    if problems:
        raise Invalid(f"{where}: {len(problems)} problem(s); nothing was written",
                      [Problem(f"{where}.charges", p) for p in problems])


def _versions(conn: Connection, org_id: int, code: str) -> list[Any]:
    return [r._mapping for r in conn.execute(
        sa.select(plans).where(plans.c.organization_id == org_id, plans.c.code == code)
        .order_by(plans.c.version))]


def plan_view(conn: Connection, org_id: int, versions: list[Any]) -> dict[str, Any]:
    first = versions[0]
    return {
        "id": ids.encode(conn, org_id, "plan", int(first["id"])), "code": first["code"],
        "name": versions[-1]["name"], "interval": first["interval"],
        "currency": first["currency"],
        "trial_days": int(first["definition"].get("trial_days", 0)),
        "prices": [{"version": v["version"], "effective_from": v["effective_from"],
                    "charges": _charges_out(v["definition"]["charges"])} for v in versions],
    }


def _charges_out(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in charges:
        props = c["properties"]
        item: dict[str, Any] = {"code": c["code"], "model": c["model"],
                                "description_fr": c["description_fr"],
                                "description_en": c["description_en"],
                                "metric": c.get("metric_code"),
                                "vat_rate_class": c.get("vat_rate_class", "standard")}
        for name in _PROPERTY_FIELDS:
            value = props.get(name)
            if value is not None and Decimal(value) != 0:
                item[name] = value
        if props.get("tiers"):
            item["tiers"] = props["tiers"]
        out.append(item)
    return out


def create_plan(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    """Create a plan with one or more price versions (effective dates strictly increasing)."""
    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    plan = parse(PlanIn, data, "plan")
    dates = [p.effective_from for p in plan.prices]
    if dates != sorted(set(dates)):
        raise Invalid("plan: 1 problem(s); nothing was written",
                      [Problem("prices", "effective_from dates must strictly increase")])
    with engine.begin() as conn:
        return create_plan_in(conn, actor, org_id, plan)


def create_plan_in(conn: Connection, actor: Actor, org_id: int, plan: PlanIn
                   ) -> dict[str, Any]:
    at = datetime.now(UTC)
    if _versions(conn, org_id, plan.code):
        raise Conflict(f"plan {plan.code!r} exists; add a price version instead",
                       [Problem("code", "already used")])
    for number, price in enumerate(plan.prices, start=1):
        version = _plan(plan, number, price)
        _check(conn, org_id, version, f"prices[{number - 1}]")
        store.add_plan(conn, org_id, version, at)
    _set_trial(conn, org_id, plan.code, plan.trial_days)
    result = plan_view(conn, org_id, _versions(conn, org_id, plan.code))
    audit.record(conn, actor, org_id, "plan.create", "plan", result["id"], after=result)
    return result


def _set_trial(conn: Connection, org_id: int, code: str, trial_days: int) -> None:
    """The trial length rides in the definition JSON (the rater ignores it)."""
    for row in _versions(conn, org_id, code):
        definition = {**row["definition"], "trial_days": trial_days}
        conn.execute(sa.update(plans).where(plans.c.id == row["id"])
                     .values(definition=definition))


def add_price(engine: Engine, actor: Actor, org_id: int, code: str, data: Any
              ) -> dict[str, Any]:
    """A new price version of ``code``, effective after the latest one (history kept)."""
    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    price = parse(PriceVersionIn, data, "price")
    with engine.begin() as conn:
        code = plan_code(conn, org_id, code)
        return add_price_in(conn, actor, org_id, code, price)


def add_price_in(conn: Connection, actor: Actor, org_id: int, code: str,
                 price: PriceVersionIn) -> dict[str, Any]:
    versions = _versions(conn, org_id, code)
    if not versions:
        raise NotFound(f"plan {code!r} not found")
    last = versions[-1]
    if price.effective_from <= last["effective_from"]:
        raise Invalid("price: 1 problem(s); nothing was written", [Problem(
            "effective_from", f"must be after {last['effective_from']} (version "
            f"{last['version']}); past prices are never rewritten")])
    version = _plan(dict(last), int(last["version"]) + 1, price)
    _check(conn, org_id, version, "price")
    store.add_plan(conn, org_id, version, datetime.now(UTC))
    _set_trial(conn, org_id, code, int(last["definition"].get("trial_days", 0)))
    before = plan_view(conn, org_id, versions)
    result = plan_view(conn, org_id, _versions(conn, org_id, code))
    audit.record(conn, actor, org_id, "plan.add_price", "plan", result["id"],
                 before=before["prices"], after=result["prices"])
    return result


def list_plans(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        codes = conn.execute(sa.select(plans.c.code).where(plans.c.organization_id == org_id)
                             .distinct().order_by(plans.c.code)).scalars().all()
        return [plan_view(conn, org_id, _versions(conn, org_id, c)) for c in codes]


def show_plan(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """A plan by code or public id."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        code = plan_code(conn, org_id, ref)
        return plan_view(conn, org_id, _versions(conn, org_id, code))


def plan_code(conn: Connection, org_id: int, ref: str) -> str:
    if ref.startswith("plan_"):
        row_id = ids.decode(conn, org_id, "plan", ref)
        code = conn.execute(sa.select(plans.c.code).where(
            plans.c.organization_id == org_id, plans.c.id == row_id)).scalar()
    else:
        code = conn.execute(sa.select(plans.c.code).where(
            plans.c.organization_id == org_id, plans.c.code == ref)).scalar()
    if code is None:
        raise NotFound(f"plan {ref!r} not found")
    return str(code)
