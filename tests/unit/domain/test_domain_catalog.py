"""Charge models, plan validation and plan versions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.catalog import (
    CatalogError,
    Charge,
    ChargeError,
    ChargeModel,
    ChargeProperties,
    ChargeTiming,
    Interval,
    Plan,
    PlanCatalog,
    Tier,
    validate_plan,
)
from sealbill.domain.taxes import VatRateClass


def usage_charge(model: ChargeModel, **props: Any) -> Charge:
    return Charge("c", model, "Charge", "Charge", ChargeProperties(**props), metric_code="m")


def plan_with(*charges: Charge, version: int = 1, start: date = date(2024, 1, 1)) -> Plan:
    return Plan("pro", "Pro", Interval.MONTH, "EUR", version, start, charges)


THREE_TIERS = (Tier(D(100), D(1)), Tier(D(1000), D("0.5")), Tier(None, D("0.1")))


# --- charge models ---------------------------------------------------------------------------


def test_flat_charge_costs_its_amount_for_one_period() -> None:
    fee = Charge("base", ChargeModel.FLAT, "Abonnement", "Plan", ChargeProperties(amount=D("29")))
    assert fee.amount(D(1)) == D("29")
    assert fee.amount(D(3)) == D("87")


def test_per_unit_charge_is_exact_with_sub_cent_prices() -> None:
    charge = usage_charge(ChargeModel.PER_UNIT, unit_price=D("0.000012"))
    assert charge.amount(D(1_234_567)) == D("14.814804")


def test_graduated_charges_each_tier_at_its_own_price() -> None:
    charge = usage_charge(ChargeModel.GRADUATED, tiers=THREE_TIERS)
    # 100 units at 1 + 900 units at 0.5 + 500 units at 0.1
    assert charge.amount(D(1500)) == D(100) + D(450) + D(50)
    units = [part.quantity for part in charge.components(D(1500))]
    assert units == [D(100), D(900), D(500)]


def test_graduated_tier_flat_fee_is_due_only_once_the_tier_is_reached() -> None:
    tiers = (Tier(D(100), D(0)), Tier(None, D(0), D(7)))
    charge = usage_charge(ChargeModel.GRADUATED, tiers=tiers)
    assert charge.amount(D(100)) == 0
    assert charge.amount(D("100.001")) == D(7)


def test_volume_prices_all_units_at_the_tier_the_total_falls_in() -> None:
    charge = usage_charge(ChargeModel.VOLUME, tiers=THREE_TIERS)
    assert charge.amount(D(50)) == D(50)
    assert charge.amount(D(1000)) == D(500)  # a boundary belongs to the lower tier
    assert charge.amount(D(1001)) == D("100.1")


def test_volume_adds_the_flat_fee_of_the_tier_reached() -> None:
    tiers = (Tier(D(10), D(2), D(1)), Tier(None, D(1), D(5)))
    charge = usage_charge(ChargeModel.VOLUME, tiers=tiers)
    assert charge.amount(D(10)) == D(21)
    assert charge.amount(D(11)) == D(16)


def test_package_charges_each_started_package_beyond_the_free_units() -> None:
    charge = usage_charge(ChargeModel.PACKAGE, amount=D(5), package_size=D(100),
                          free_units=D(50))
    assert [charge.amount(D(q)) for q in (0, 50, 51, 150, 151)] == [0, 0, 5, 5, 10]


def test_percentage_charge_takes_its_rate_of_the_amount() -> None:
    charge = usage_charge(ChargeModel.PERCENTAGE, rate=D("1.4"))
    assert charge.amount(D("250.00")) == D("3.5")


@pytest.mark.parametrize("model", [m for m in ChargeModel if m is not ChargeModel.FLAT])
def test_usage_charges_cost_nothing_without_usage(model: ChargeModel) -> None:
    props: dict[ChargeModel, dict[str, Any]] = {
        ChargeModel.PER_UNIT: {"unit_price": D(1)},
        ChargeModel.GRADUATED: {"tiers": (Tier(None, D(1), D(9)),)},
        ChargeModel.VOLUME: {"tiers": (Tier(None, D(1), D(9)),)},
        ChargeModel.PACKAGE: {"amount": D(1), "package_size": D(10)},
        ChargeModel.PERCENTAGE: {"rate": D(3)},
    }
    charge = usage_charge(model, **props[model])
    assert charge.amount(D(0)) == 0
    assert charge.components(D(0)) == ()


def test_negative_and_non_decimal_quantities_are_refused() -> None:
    charge = usage_charge(ChargeModel.PER_UNIT, unit_price=D(1))
    with pytest.raises(ChargeError, match="negative"):
        charge.amount(D(-1))
    with pytest.raises(ChargeError, match="Decimal"):
        charge.amount(1.5)  # type: ignore[arg-type]


def test_quantity_beyond_a_closed_last_tier_is_refused() -> None:
    charge = usage_charge(ChargeModel.GRADUATED, tiers=(Tier(D(10), D(1)),))
    with pytest.raises(ChargeError, match="beyond the last tier"):
        charge.amount(D(11))


def test_fixed_fees_are_billed_in_advance_and_usage_in_arrears() -> None:
    fee = Charge("base", ChargeModel.FLAT, "Abonnement", "Plan", ChargeProperties(amount=D(1)))
    plan = plan_with(fee, usage_charge(ChargeModel.PER_UNIT, unit_price=D(1)))
    assert fee.timing is ChargeTiming.IN_ADVANCE
    assert [c.timing for c in plan.usage_charges] == [ChargeTiming.IN_ARREARS]
    assert plan.fixed_charges == (fee,)


# --- validation --------------------------------------------------------------------------------


def test_a_well_formed_plan_has_no_problem() -> None:
    plan = plan_with(
        Charge("base", ChargeModel.FLAT, "Abonnement", "Plan", ChargeProperties(amount=D("9.99")),
               vat_rate_class=VatRateClass.REDUCED),
        usage_charge(ChargeModel.GRADUATED, tiers=THREE_TIERS),
    )
    assert validate_plan(plan, metric_codes={"m"}) == []


def test_validate_plan_names_the_charge_and_field_of_every_problem_at_once() -> None:
    plan = plan_with(
        Charge("api", ChargeModel.GRADUATED, "", "API", ChargeProperties(
            tiers=(Tier(D(100), D(1)), Tier(D(100), D(-2)), Tier(D(500), D(1))))),
        Charge("sms", ChargeModel.PACKAGE, "SMS", "SMS",
               ChargeProperties(amount=D(1), package_size=D(0), unit_price=D(3)), "sms"),
        Charge("fee", ChargeModel.PERCENTAGE, "Frais", "Fees", ChargeProperties(
            rate=D(120), min_per_transaction=D(5), max_per_transaction=D(1)), "pay"),
    )
    problems = validate_plan(plan, metric_codes={"sms"})
    expected = [
        "charge api: description_fr: empty",
        "charge api: metric_code: required by the graduated model",
        "charge api: tiers[1].unit_price: must be zero or more, got -2",
        "charge api: tiers[1].up_to: 100 must be greater than 100",
        "charge api: tiers[2].up_to: the last tier must be open",
        "charge sms: package_size: must be positive, got 0",
        "charge sms: unit_price: not used by the package model",
        "charge fee: metric_code: unknown metric 'pay'",
        "charge fee: rate: 120 % is above 100 %",
        "charge fee: min_per_transaction: 5 is above max 1",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), fragment
    assert len(problems) == len(expected)
    assert all(problem.startswith("plan pro v1: charge ") for problem in problems)


def test_validate_plan_refuses_float_prices() -> None:
    plan = plan_with(usage_charge(ChargeModel.PER_UNIT, unit_price=0.1))
    assert validate_plan(plan) == [
        "plan pro v1: charge c: unit_price: must be a Decimal, not float"
    ]


def test_a_flat_fee_finer_than_the_currency_is_a_problem() -> None:
    plan = plan_with(Charge("base", ChargeModel.FLAT, "A", "A",
                            ChargeProperties(amount=D("9.999"))))
    assert validate_plan(plan) == [
        "plan pro v1: charge base: amount: 9.999 is finer than a EUR invoice amount (minor "
        "units, at most 2 decimals)"
    ]


def test_validate_plan_checks_the_plan_itself() -> None:
    plan = Plan("", "X", "week", "ZZZ", 0, date(2024, 1, 1))  # type: ignore[arg-type]
    problems = validate_plan(plan)
    for fragment in ("code: empty", "interval", "currency: unknown 'ZZZ'", "version",
                     "a plan needs at least one charge"):
        assert any(fragment in problem for problem in problems), fragment


def test_duplicated_charge_codes_are_a_problem() -> None:
    charge = usage_charge(ChargeModel.PER_UNIT, unit_price=D(1))
    assert validate_plan(plan_with(charge, charge)) == [
        "plan pro v1: charge c: code: duplicated"
    ] * 2


# --- versions ----------------------------------------------------------------------------------


def test_catalog_picks_the_version_in_effect_on_a_day() -> None:
    catalog = PlanCatalog([plan_with(version=2, start=date(2024, 7, 1)), plan_with()])
    assert catalog.price_for("pro", date(2024, 1, 1)).version == 1
    assert catalog.price_for("pro", date(2024, 6, 30)).version == 1
    assert catalog.price_for("pro", date(2025, 1, 1)).version == 2


def test_catalog_refuses_unknown_plans_and_days_before_the_first_version() -> None:
    catalog = PlanCatalog([plan_with()])
    with pytest.raises(CatalogError, match="unknown plan"):
        catalog.price_for("gold", date(2024, 1, 1))
    with pytest.raises(CatalogError, match="no version in effect"):
        catalog.price_for("pro", date(2023, 12, 31))


def test_catalog_problems_flag_ambiguous_and_misordered_versions() -> None:
    fee = Charge("base", ChargeModel.FLAT, "A", "A", ChargeProperties(amount=D(1)))
    catalog = PlanCatalog([plan_with(fee, version=1, start=date(2024, 1, 1)),
                           plan_with(fee, version=2, start=date(2024, 1, 1)),
                           plan_with(fee, version=1, start=date(2024, 3, 1))])
    problems = catalog.problems()
    assert any("share effective_from 2024-01-01" in p for p in problems)
    assert any("v1 is effective after v2" in p for p in problems)


# --- properties --------------------------------------------------------------------------------

prices = st.integers(0, 5000).map(lambda n: D(n).scaleb(-3))


@st.composite
def tier_lists(draw: st.DrawFn, *, fees: bool = True) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 60), max_size=4)))
    fee = prices if fees else st.just(D(0))
    tiers = [Tier(D(b), draw(prices), draw(fee)) for b in bounds]
    return (*tiers, Tier(None, draw(prices), draw(fee)))


def price_of_unit(tiers: tuple[Tier, ...], unit: int) -> tuple[int, D]:
    for index, tier in enumerate(tiers):
        if tier.up_to is None or unit <= tier.up_to:
            return index, tier.unit_price
    raise AssertionError("no open tier")


@given(tier_lists(), st.integers(0, 120))
def test_graduated_equals_pricing_unit_by_unit(tiers: tuple[Tier, ...], quantity: int) -> None:
    charge = usage_charge(ChargeModel.GRADUATED, tiers=tiers)
    walked = [price_of_unit(tiers, unit) for unit in range(1, quantity + 1)]
    reached = {index for index, _ in walked}
    expected = sum((price for _, price in walked), D(0)) + sum(
        (tiers[i].flat_fee for i in reached), D(0))
    assert charge.amount(D(quantity)) == expected


@given(tier_lists(), st.integers(0, 10**6).map(lambda n: D(n).scaleb(-3)))
def test_graduated_tiers_split_the_quantity_and_sum_to_the_total(
    tiers: tuple[Tier, ...], quantity: D
) -> None:
    charge = usage_charge(ChargeModel.GRADUATED, tiers=tiers)
    parts = charge.components(quantity)
    assert sum((p.quantity for p in parts if p.kind == "tier"), D(0)) == quantity
    assert sum((p.amount for p in parts), D(0)) == charge.amount(quantity)


@given(tier_lists(), st.integers(0, 100), st.integers(0, 100))
def test_graduated_never_decreases_with_more_usage(
    tiers: tuple[Tier, ...], a: int, b: int
) -> None:
    charge = usage_charge(ChargeModel.GRADUATED, tiers=tiers)
    low, high = sorted((a, b))
    assert charge.amount(D(low)) <= charge.amount(D(high))


@given(tier_lists(fees=False), st.integers(0, 120), st.booleans())
def test_volume_is_below_graduated_for_discounts_and_above_for_surcharges(
    tiers: tuple[Tier, ...], quantity: int, discount: bool
) -> None:
    ordered = sorted((t.unit_price for t in tiers), reverse=discount)
    tiers = tuple(Tier(t.up_to, price) for t, price in zip(tiers, ordered, strict=True))
    volume = usage_charge(ChargeModel.VOLUME, tiers=tiers).amount(D(quantity))
    graduated = usage_charge(ChargeModel.GRADUATED, tiers=tiers).amount(D(quantity))
    assert (volume <= graduated) if discount else (volume >= graduated)


@given(st.integers(1, 500), st.integers(0, 100), st.integers(0, 5000), prices)
def test_package_price_stays_within_one_package_of_the_pro_rata_price(
    size: int, free: int, quantity: int, price: D
) -> None:
    charge = usage_charge(ChargeModel.PACKAGE, amount=price, package_size=D(size),
                          free_units=D(free))
    pro_rata = price * max(0, quantity - free) / size
    assert pro_rata <= charge.amount(D(quantity)) < pro_rata + price or price == 0
