"""Billing periods, proration and the fixed-fee lines of a subscription."""

from __future__ import annotations

import calendar
import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.domain.catalog import PlanCatalog as Catalog
from sealbill.domain.subscriptions import (
    Cancellation,
    CancellationMode,
    FeeKind,
    Period,
    Phase,
    Subscription,
    SubscriptionError,
    advance_fee_lines,
    fixed_fee_lines,
    period_containing,
    prorate,
    proration_lines,
    segment_amount,
    usage_scope,
    validate_subscription,
)


def fee_plan(code: str, amount: str, *, version: int = 1, start: date = date(2024, 1, 1),
             interval: Interval = Interval.MONTH, currency: str = "EUR") -> Plan:
    fee = Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                 ChargeProperties(amount=D(amount)))
    return Plan(code, code.title(), interval, currency, version, start, (fee,))


CATALOG = Catalog([fee_plan("basic", "31.00"), fee_plan("pro", "62.00"),
                   fee_plan("pro", "93.00", version=2, start=date(2024, 6, 1))])
MARCH = Period(date(2024, 3, 1), date(2024, 4, 1))


def subscription(*phases: Phase, trial_end: date | None = None,
                 cancellation: Cancellation | None = None) -> Subscription:
    return Subscription("S-1", "C-1", Interval.MONTH, date(2024, 1, 1), phases,
                        trial_end=trial_end, cancellation=cancellation)


def amounts(lines: list) -> list[tuple[FeeKind, str, int]]:  # type: ignore[type-arg]
    return [(line.kind, line.plan.code, line.amount_minor) for line in lines]


# --- periods -----------------------------------------------------------------------------------


def test_monthly_periods_anchored_on_the_31st_clamp_without_drifting() -> None:
    anchor = date(2024, 1, 31)
    starts = [period_containing(anchor, Interval.MONTH, date(2024, m, 28)).start
              for m in (2, 3, 4, 5)]
    assert starts == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_yearly_periods_follow_the_anchor_day_and_month() -> None:
    period = period_containing(date(2023, 9, 15), Interval.YEAR, date(2024, 9, 14))
    assert period == Period(date(2023, 9, 15), date(2024, 9, 15))
    assert period.days == 366


@given(st.dates(date(2000, 1, 1), date(2100, 1, 1)), st.dates(date(1990, 1, 1),
       date(2110, 1, 1)), st.sampled_from(list(Interval)))
def test_periods_contain_the_day_tile_time_and_start_on_the_billing_day(
    anchor: date, on: date, interval: Interval
) -> None:
    period = period_containing(anchor, interval, on)
    assert period.start <= on < period.end
    assert period_containing(anchor, interval, period.end).start == period.end
    last_day = calendar.monthrange(period.start.year, period.start.month)[1]
    assert period.start.day == min(anchor.day, last_day)
    if interval is Interval.YEAR:
        assert period.start.month == anchor.month


# --- proration ---------------------------------------------------------------------------------


def test_prorate_rounds_half_up_once() -> None:
    assert prorate(1000, 15, 30) == 500
    assert prorate(1, 1, 2) == 1
    assert prorate(-1, 1, 2) == -1
    assert prorate(100, 1, 3) == 33
    assert prorate(200, 1, 3) == 67


@pytest.mark.parametrize("args", [(100, 31, 30), (100, -1, 30), (100, 1, 0), (1.5, 1, 2)])
def test_prorate_refuses_impossible_inputs(args: tuple[object, int, int]) -> None:
    with pytest.raises(SubscriptionError):
        prorate(*args)  # type: ignore[arg-type]


amounts_minor = st.integers(-10**9, 10**9)


@given(amounts_minor, st.integers(1, 366))
def test_proration_over_a_full_period_is_the_full_price(amount: int, days: int) -> None:
    assert prorate(amount, days, days) == amount
    assert prorate(amount, 0, days) == 0


@given(amounts_minor, st.integers(1, 366), st.data())
def test_prorated_parts_stay_within_half_a_minor_unit_of_the_exact_share(
    amount: int, days: int, data: st.DataObject
) -> None:
    used = data.draw(st.integers(0, days))
    assert abs(prorate(amount, used, days) * days - amount * used) * 2 <= days


@given(amounts_minor, st.integers(28, 31), st.data())
def test_segments_of_any_split_of_a_period_sum_to_the_full_amount(
    amount: int, days: int, data: st.DataObject
) -> None:
    period = Period(date(2024, 1, 1), date(2024, 1, 1) + timedelta(days=days))
    cuts = sorted(data.draw(st.lists(st.integers(0, days), max_size=5)))
    bounds = [0, *cuts, days]
    dates = [period.start + timedelta(days=b) for b in bounds]
    parts = [segment_amount(amount, period, a, b) for a, b in itertools.pairwise(dates)]
    assert sum(parts) == amount


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(1, 30))
def test_a_plan_change_credits_plus_used_part_make_each_full_fee(
    old_fee: int, new_fee: int, change_day: int
) -> None:
    catalog = Catalog([fee_plan("old", str(D(old_fee).scaleb(-2))),
                       fee_plan("new", str(D(new_fee).scaleb(-2)))])
    change = MARCH.start + timedelta(days=change_day)
    sub = subscription(Phase("old", date(2024, 1, 1), change), Phase("new", change))
    advance = sum(line.amount_minor for line in advance_fee_lines(sub, catalog, MARCH))
    lines = proration_lines(sub, catalog, MARCH)
    credit = -sum(line.amount_minor for line in lines if line.kind is FeeKind.PRORATION_CREDIT)
    charge = sum(line.amount_minor for line in lines if line.kind is FeeKind.PRORATION_CHARGE)
    used_old = advance - credit
    assert advance == old_fee
    assert used_old + credit == old_fee
    assert charge + segment_amount(new_fee, MARCH, MARCH.start, change) == new_fee
    assert abs(used_old * 31 - old_fee * change_day) * 2 <= 31
    assert abs(charge * 31 - new_fee * (31 - change_day)) * 2 <= 31


# --- fixed-fee lines ---------------------------------------------------------------------------


def test_the_opening_invoice_charges_the_full_fee_in_advance() -> None:
    sub = subscription(Phase("basic", date(2024, 1, 1)))
    lines = fixed_fee_lines(sub, CATALOG, MARCH)
    assert amounts(lines) == [(FeeKind.FIXED_FEE, "basic", 3100)]
    assert (lines[0].quantity, lines[0].unit_price) == (D(1), D("31.00"))
    assert lines[0].description("fr") == "Abonnement - Basic (01/03/2024 au 31/03/2024)"


def test_a_plan_change_mid_period_credits_the_old_fee_and_charges_the_new_one() -> None:
    sub = subscription(Phase("basic", date(2024, 1, 1), date(2024, 3, 11)),
                       Phase("pro", date(2024, 3, 11)))
    april = Period(date(2024, 4, 1), date(2024, 5, 1))
    lines = fixed_fee_lines(sub, CATALOG, april)
    assert amounts(lines) == [
        (FeeKind.FIXED_FEE, "pro", 6200),
        (FeeKind.PRORATION_CREDIT, "basic", -2100),  # 21 of 31 days of 31.00 unused
        (FeeKind.PRORATION_CHARGE, "pro", 4200),  # 21 of 31 days of 62.00
    ]
    credit = lines[1]
    assert (credit.quantity, credit.unit_price) == (D(-1), D("21.00"))
    assert credit.description("en") == (
        "Prorated credit: Subscription - Basic (2024-03-11 to 2024-03-31, 21/31 days)")


def test_trial_days_are_free() -> None:
    whole = subscription(Phase("basic", date(2024, 1, 1)), trial_end=date(2024, 4, 1))
    assert fixed_fee_lines(whole, CATALOG, MARCH) == []
    partial = subscription(Phase("basic", date(2024, 1, 1)), trial_end=date(2024, 3, 22))
    assert amounts(fixed_fee_lines(partial, CATALOG, MARCH)) == [
        (FeeKind.FIXED_FEE, "basic", 1000)]  # 10 of 31 days


def test_an_immediate_cancellation_credits_the_unused_days() -> None:
    sub = subscription(Phase("basic", date(2024, 1, 1)),
                       cancellation=Cancellation(date(2024, 3, 21), CancellationMode.IMMEDIATE))
    april = Period(date(2024, 4, 1), date(2024, 5, 1))
    assert amounts(fixed_fee_lines(sub, CATALOG, april)) == [
        (FeeKind.PRORATION_CREDIT, "basic", -1100)]


def test_a_cancellation_at_period_end_stops_billing_without_credit() -> None:
    sub = subscription(Phase("basic", date(2024, 1, 1)),
                       cancellation=Cancellation(date(2024, 3, 21)))
    assert sub.ends_on == date(2024, 4, 1)
    assert fixed_fee_lines(sub, CATALOG, Period(date(2024, 4, 1), date(2024, 5, 1))) == []
    assert amounts(fixed_fee_lines(sub, CATALOG, MARCH)) == [(FeeKind.FIXED_FEE, "basic", 3100)]


def test_the_price_version_in_effect_applies_from_the_next_period() -> None:
    sub = subscription(Phase("pro", date(2024, 1, 1)))
    june = Period(date(2024, 6, 1), date(2024, 7, 1))
    assert amounts(fixed_fee_lines(sub, CATALOG, june)) == [(FeeKind.FIXED_FEE, "pro", 9300)]


def test_when_history_no_longer_matches_the_advance_the_whole_advance_is_credited() -> None:
    sub = subscription(Phase("pro", date(2024, 1, 1)))
    billed = (CATALOG.price_for("basic", MARCH.start), MARCH.start)
    assert amounts(proration_lines(sub, CATALOG, MARCH, billed)) == [
        (FeeKind.PRORATION_CREDIT, "basic", -3100), (FeeKind.PRORATION_CHARGE, "pro", 6200)]


def test_usage_is_rated_with_the_last_phase_and_windowed_after_the_trial() -> None:
    sub = subscription(Phase("basic", date(2024, 1, 1), date(2024, 3, 11)),
                       Phase("pro", date(2024, 3, 11)), trial_end=date(2024, 3, 5))
    paris = ZoneInfo("Europe/Paris")
    scope = usage_scope(sub, CATALOG, MARCH, paris)
    assert scope is not None and scope.plan.code == "pro"
    assert (scope.start, scope.end) == (datetime(2024, 3, 5, tzinfo=paris),
                                        datetime(2024, 4, 1, tzinfo=paris))
    assert scope.period_length == timedelta(days=31, hours=-1)  # summer time began on 31 March
    trial_only = subscription(Phase("basic", date(2024, 1, 1)), trial_end=date(2024, 5, 1))
    assert usage_scope(trial_only, CATALOG, MARCH) is None


def test_validate_subscription_reports_every_problem_at_once() -> None:
    yearly = Catalog([*(CATALOG.versions("basic")),
                      fee_plan("big", "1.00", interval=Interval.YEAR, currency="USD")])
    sub = subscription(Phase("basic", date(2024, 1, 1), date(2024, 3, 1)),
                       Phase("big", date(2024, 2, 1), date(2024, 1, 15)),
                       Phase("gold", date(2024, 4, 1)),
                       cancellation=Cancellation(date(2023, 1, 1)))
    problems = validate_subscription(sub, yearly)
    for fragment in ("phases[0].end: overlaps phases[1]", "phases[1].end: 2024-01-15 is not after",
                     "phases[1].plan_code: plan big is billed per year",
                     "phases[2].plan_code: unknown plan 'gold'",
                     "plans in several currencies", "cancellation.requested_on"):
        assert any(fragment in problem for problem in problems), fragment
