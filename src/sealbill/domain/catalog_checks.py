"""Validation of plans and charges: every problem at once, each naming the charge and field.

Invariants: prices are ``Decimal`` (floats refused), tiers are increasing with only the last one
open, a flat fee is a whole invoice amount of the plan's currency, a charge sets only the
properties its model uses.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from datetime import date
from decimal import Decimal

from sealbill.domain.catalog import (
    _TIERED,
    Charge,
    ChargeModel,
    ChargeProperties,
    ChargeTiming,
    Interval,
    Plan,
    Tier,
)
from sealbill.domain.money import CURRENCY_EXPONENTS, to_major, to_minor
from sealbill.domain.taxes import VatRateClass

_DECIMAL_FIELDS: dict[ChargeModel, tuple[tuple[str, bool, bool], ...]] = {
    ChargeModel.FLAT: (("amount", False, False),),
    ChargeModel.PER_UNIT: (("unit_price", False, False),),
    ChargeModel.GRADUATED: (),
    ChargeModel.VOLUME: (),
    ChargeModel.PACKAGE: (("amount", False, False), ("package_size", True, False),
                          ("free_units", False, False)),
    ChargeModel.PERCENTAGE: (("rate", False, False), ("fixed_fee", False, False),
                             ("min_per_transaction", False, True),
                             ("max_per_transaction", False, True)),
}


def _decimal_problems(value: object, where: str, *, positive: bool = False) -> list[str]:
    if not isinstance(value, Decimal):
        return [f"{where}: must be a Decimal, not {type(value).__name__}"]
    if not value.is_finite() or value < 0 or (positive and value == 0):
        return [f"{where}: must be {'positive' if positive else 'zero or more'}, got {value}"]
    return []


def _tier_problems(tiers: tuple[Tier, ...], where: str) -> list[str]:
    if not tiers:
        return [f"{where}: tiers: at least one tier is required"]
    problems: list[str] = []
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        at = f"{where}: tiers[{i}]"
        problems += _decimal_problems(tier.unit_price, f"{at}.unit_price")
        problems += _decimal_problems(tier.flat_fee, f"{at}.flat_fee")
        if tier.up_to is None:
            if i != len(tiers) - 1:
                problems.append(f"{at}.up_to: only the last tier may be open (None)")
        elif bad := _decimal_problems(tier.up_to, f"{at}.up_to", positive=True):
            problems += bad
        else:
            if previous is not None and tier.up_to <= previous:
                problems.append(f"{at}.up_to: {tier.up_to} must be greater than {previous}")
            previous = tier.up_to
    if tiers[-1].up_to is not None:
        problems.append(f"{where}: tiers[{len(tiers) - 1}].up_to: the last tier must be open "
                        "(up_to=None)")
    return problems


def _model_problems(charge: Charge, currency: str, where: str) -> list[str]:
    p, problems = charge.properties, []
    for name, positive, optional in _DECIMAL_FIELDS[charge.model]:
        if not (optional and getattr(p, name) is None):
            problems += _decimal_problems(getattr(p, name), f"{where}: {name}", positive=positive)
    if charge.model in _TIERED:
        problems += _tier_problems(p.tiers, where)
    if charge.model is ChargeModel.FLAT and not problems and currency in CURRENCY_EXPONENTS and (
        to_major(to_minor(p.amount, currency), currency) != p.amount
    ):
        problems.append(f"{where}: amount: {p.amount} is finer than a {currency} invoice "
                        "amount (minor units, at most 2 decimals)")
    if charge.model is ChargeModel.PERCENTAGE and not problems:
        low, high = p.min_per_transaction, p.max_per_transaction
        if p.rate > 100:
            problems.append(f"{where}: rate: {p.rate} % is above 100 %")
        if low is not None and high is not None and low > high:
            problems.append(f"{where}: min_per_transaction: {low} is above max {high}")
    used = {name for name, _, _ in _DECIMAL_FIELDS[charge.model]}
    used |= {"tiers"} if charge.model in _TIERED else set()
    problems += [f"{where}: {f.name}: not used by the {charge.model} model"
                 for f in fields(ChargeProperties)
                 if f.name not in used and getattr(p, f.name) != f.default]
    return problems


def _charge_problems(
    charge: Charge, currency: str, where: str, metric_codes: Collection[str] | None
) -> list[str]:
    if not isinstance(charge.model, ChargeModel):
        return [f"{where}: model: unknown {charge.model!r}"]
    problems = [f"{where}: {name}: empty" for name in ("code", "description_fr", "description_en")
                if not getattr(charge, name).strip()]
    if not isinstance(charge.vat_rate_class, VatRateClass):
        problems.append(f"{where}: vat_rate_class: unknown {charge.vat_rate_class!r}")
    if charge.model is ChargeModel.FLAT:
        if charge.metric_code is not None:
            problems.append(f"{where}: metric_code: a flat fixed fee has no metric")
    elif not charge.metric_code:
        problems.append(f"{where}: metric_code: required by the {charge.model} model")
    elif metric_codes is not None and charge.metric_code not in metric_codes:
        problems.append(f"{where}: metric_code: unknown metric {charge.metric_code!r}")
    if charge.usage_interval is not None and charge.timing is ChargeTiming.IN_ADVANCE:
        problems.append(f"{where}: usage_interval: a fixed fee follows the plan's interval")
    return problems + _model_problems(charge, currency, where)


def plan_problems(plan: Plan, metric_codes: Collection[str] | None = None) -> list[str]:
    """Every problem of ``plan``, each naming the charge and the field; empty means valid.

    >>> bad = Plan("pro", "Pro", Interval.MONTH, "EUR", 1, date(2024, 1, 1), (
    ...     Charge("api", ChargeModel.VOLUME, "API", "API", ChargeProperties(tiers=(
    ...         Tier(Decimal(10), Decimal(1)), Tier(Decimal(5), Decimal(-1)))), "calls"),))
    >>> for problem in plan_problems(bad): print(problem)
    plan pro v1: charge api: tiers[1].unit_price: must be zero or more, got -1
    plan pro v1: charge api: tiers[1].up_to: 5 must be greater than 10
    plan pro v1: charge api: tiers[1].up_to: the last tier must be open (up_to=None)
    """
    where = f"plan {plan.code} v{plan.version}"
    checks = [
        (bool(plan.code), "code: empty"),
        (isinstance(plan.interval, Interval), f"interval: not month|year: {plan.interval!r}"),
        (plan.currency in CURRENCY_EXPONENTS, f"currency: unknown {plan.currency!r}"),
        (type(plan.version) is int and plan.version >= 1, "version: must be an int >= 1"),
        (isinstance(plan.effective_from, date), "effective_from: must be a date"),
        (bool(plan.charges), "charges: a plan needs at least one charge"),
    ]
    problems = [f"{where}: {message}" for ok, message in checks if not ok]
    codes = [charge.code for charge in plan.charges]
    for charge in plan.charges:
        at = f"{where}: charge {charge.code}"
        if codes.count(charge.code) > 1:
            problems.append(f"{at}: code: duplicated")
        problems += _charge_problems(charge, plan.currency, at, metric_codes)
    return problems
