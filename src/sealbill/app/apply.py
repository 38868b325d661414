"""``sealbill apply -f catalog.yaml``: the catalog declared in a file, applied idempotently.

The file holds ``metrics:`` and ``plans:`` (the same fields as the API's inputs). Each object is
compared with what the organization has and classed ``create``, ``change`` or ``unchanged``:
a metric's name may change; a plan gains the price versions listed after its stored ones.
Anything that would rewrite history (a stored price version that differs, a metric's
aggregation) is refused with the object and field named. Invariants: a dry run writes nothing
and reports exactly what a real run would do; a real run applies the whole file in one
transaction or nothing; applying the same file twice changes nothing the second time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from pydantic import Field
from sqlalchemy.engine import Connection, Engine

from sealbill.app import catalog
from sealbill.app.context import CATALOG_WRITE, Actor
from sealbill.app.errors import Invalid, Problem
from sealbill.inputs.catalog import MetricIn, PlanIn
from sealbill.inputs.models import Model, parse
from sealbill.pipeline.data_check import stored_outside
from sealbill.store.billing import catalog as store
from sealbill.store.billing.catalog import plan_to_json


class CatalogFile(Model):
    metrics: list[MetricIn] = Field(default_factory=list)
    plans: list[PlanIn] = Field(default_factory=list)


def read(text: str) -> CatalogFile:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise Invalid(f"catalog file: not YAML: {exc}", [Problem("", str(exc))]) from None
    return parse(CatalogFile, decimals_as_text(data), "catalog file")


def decimals_as_text(value: Any) -> Any:
    """YAML reads 0.10 as a float: prices are taken as the text that was written instead."""
    if isinstance(value, dict):
        return {k: decimals_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decimals_as_text(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value


def _normal(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, str):
            try:
                return str(Decimal(v).normalize())
            except ArithmeticError:
                return v
        return v
    return list(norm(charges))


def apply(engine: Engine, actor: Actor, org_id: int, text: str, *, dry_run: bool
          ) -> dict[str, Any]:
    """The diff (``changes``: one entry per object) and whether it was applied."""
    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    wanted = read(text)
    with engine.begin() as conn:
        changes = _diff(conn, org_id, wanted)
        if not dry_run:  # the diff itself writes nothing
            _execute(conn, actor, org_id, wanted, changes)
    counts = {k: sum(1 for c in changes if c["action"] == k)
              for k in ("create", "change", "unchanged")}
    return {"dry_run": dry_run, "applied": not dry_run, "changes": changes, **counts}


def _diff(conn: Connection, org_id: int, wanted: CatalogFile) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    problems: list[Problem] = []
    stored = store.load_metrics(conn, org_id)
    for i, m in enumerate(wanted.metrics):
        row = stored.get(m.code)
        if row is None:
            changes.append({"kind": "metric", "code": m.code, "action": "create"})
        elif (row["aggregation"], row["field"]) != (m.aggregation, m.field):
            problems.append(Problem(f"metrics[{i}].aggregation", f"metric {m.code!r} is "
                                    f"{row['aggregation']}/{row['field']}; it cannot change"))
        elif row["name"] != m.name or catalog.limits_view(row) != catalog.limits_view(
                m.limits()):
            changes.append(_metric_change(conn, org_id, row, m))
        else:
            changes.append({"kind": "metric", "code": m.code, "action": "unchanged"})
    for i, p in enumerate(wanted.plans):
        versions = catalog._versions(conn, org_id, p.code)
        if not versions:
            changes.append({"kind": "plan", "code": p.code, "action": "create",
                            "detail": f"{len(p.prices)} price version(s)"})
            continue
        for j, (row, price) in enumerate(zip(versions, p.prices, strict=False)):
            mine = _normal(plan_to_json(catalog._plan(p, j + 1, price))["charges"])
            if row["effective_from"] != price.effective_from or \
                    _normal(row["definition"]["charges"]) != mine:
                problems.append(Problem(f"plans[{i}].prices[{j}]", f"plan {p.code!r} version "
                                        f"{j + 1} differs from the stored one; versions never "
                                        "change: add a new version with a later date"))
        if len(p.prices) < len(versions):
            problems.append(Problem(f"plans[{i}].prices", f"plan {p.code!r} has "
                                    f"{len(versions)} stored versions; list them all"))
        extra = len(p.prices) - len(versions)
        if extra > 0:
            changes.append({"kind": "plan", "code": p.code, "action": "change",
                            "detail": f"add {extra} price version(s)"})
        else:
            changes.append({"kind": "plan", "code": p.code, "action": "unchanged"})
    if problems:
        raise Invalid(f"catalog file: {len(problems)} problem(s); nothing was applied",
                      problems)
    return changes


def _execute(conn: Connection, actor: Actor, org_id: int, wanted: CatalogFile,
             changes: list[dict[str, Any]]) -> None:
    todo = {(c["kind"], c["code"]): c["action"] for c in changes}
    for m in wanted.metrics:
        if todo[("metric", m.code)] == "create":
            catalog.create_metric_in(conn, actor, org_id, m)
        elif todo[("metric", m.code)] == "change":
            catalog.update_metric_in(conn, actor, org_id, m.code, m)
    for p in wanted.plans:
        action = todo[("plan", p.code)]
        if action == "create":
            catalog.create_plan_in(conn, actor, org_id, p)
        elif action == "change":
            stored = len(catalog._versions(conn, org_id, p.code))
            for price in p.prices[stored:]:
                catalog.add_price_in(conn, actor, org_id, p.code, price)


def _metric_change(conn: Connection, org_id: int, row: Any, wanted: MetricIn
                   ) -> dict[str, Any]:
    """What changes in a stored metric (``name 'A' -> 'B'; max_value None -> '100'``) and how
    many stored events the new limits would refuse (``stored_outside``: they stay stored)."""
    before = {"name": row["name"], **catalog.limits_view(row)}
    after = {"name": wanted.name, **catalog.limits_view(wanted.limits())}
    detail = "; ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in before
                       if before[k] != after[k])
    outside = stored_outside(conn, org_id, {**row, **wanted.limits()})
    if outside:
        detail += (f"; {outside} stored usage event(s) outside the new limits (they stay "
                   "stored; `sealbill check data` lists them, `sealbill usage void` sets one "
                   "aside)")
    return {"kind": "metric", "code": wanted.code, "action": "change", "detail": detail,
            "stored_outside": outside}
