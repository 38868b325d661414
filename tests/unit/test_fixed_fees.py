"""Fixed fees in advance and day-based proration (sealbill.domain.fixed_fees)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.fixed_fees import Phase, fee_spans, prorate

OCT = (date(2026, 10, 1), date(2026, 11, 1))
NOV = (date(2026, 11, 1), date(2026, 12, 1))


@given(st.integers(0, 10**9), st.integers(1, 366))
def test_proration_over_a_full_period_equals_the_full_price(amount: int, days: int) -> None:
    assert prorate(amount, days, days) == amount


@given(st.integers(0, 10**7), st.integers(28, 31), st.data())
def test_proration_of_two_halves_never_strays_more_than_a_minor_unit(
        amount: int, days: int, data: st.DataObject) -> None:
    used = data.draw(st.integers(0, days))
    total = prorate(amount, used, days) + prorate(amount, days - used, days)
    assert abs(total - amount) <= 1


def test_a_steady_subscription_is_billed_once_in_advance() -> None:
    spans = fee_spans([Phase("pro", date(2025, 1, 1))], OCT, NOV)
    assert [(s.plan_code, s.sign, s.reason, s.days) for s in spans] == [
        ("pro", 1, "advance", 30)]


def test_a_plan_change_credits_the_unused_old_plan_and_charges_the_new_one() -> None:
    change = date(2026, 10, 11)
    spans = fee_spans([Phase("basic", date(2025, 1, 1), change), Phase("pro", change)],
                      OCT, NOV)
    summary = sorted((s.plan_code, s.sign, s.days) for s in spans if s.reason != "advance")
    assert summary == [("basic", -1, 31), ("basic", 1, 10), ("pro", 1, 21)]
    assert [s.plan_code for s in spans if s.reason == "advance"] == ["pro"]


def test_an_immediate_cancellation_credits_the_rest_of_the_period_and_stops_billing() -> None:
    spans = fee_spans([Phase("pro", date(2025, 1, 1))], OCT, NOV, ends_on=date(2026, 10, 21))
    assert sorted((s.sign, s.days, s.reason) for s in spans) == [
        (-1, 31, "adjustment_credit"), (1, 20, "adjustment_charge")]


def test_trial_days_are_free() -> None:
    spans = fee_spans([Phase("pro", date(2026, 10, 1))], OCT, NOV,
                      trial_end=date(2026, 10, 15))
    charged = [(s.days, s.reason) for s in spans]
    assert (17, "adjustment_charge") in charged and (30, "advance") in charged


@given(st.integers(1, 30))
def test_credit_plus_charges_over_a_split_equal_each_plan_for_its_days(day: int) -> None:
    change = OCT[0] + timedelta(days=day)
    spans = fee_spans([Phase("a", date(2025, 1, 1), change), Phase("b", change)], OCT, NOV)
    days = {(s.plan_code, s.sign): s.days for s in spans if s.reason != "advance"}
    assert days[("a", 1)] + days[("b", 1)] == days[("a", -1)] == 31
