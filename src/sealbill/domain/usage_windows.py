"""Which usage the invoice opening a billing month carries, and with which plan.

Usage is billed in arrears, on each charge's own cadence (``Charge.usage_cadence``: every month
by default, also on a yearly plan; or yearly): the invoice that opens the calendar month ``P``
carries, for each cadence, the usage window of the subscription that ends on ``P.start``
(windows are anchored on the subscription's billing anchor, like its periods). A window is
split at every phase change: each :class:`UsageSegment` is rated with the plan version in
force during it, so usage before a downgrade is billed at the old plan's prices. Trial days
are not billed.

Invariants:

- the segments of a window do not overlap, lie inside it, and follow the subscription's
  billable phases (trial excluded);
- each segment's ``scope.period_length`` is the length of the whole window: the time-weighted
  averages of the segments of a window add up to the window's average;
- a segment carries only the usage charges of its plan whose cadence is the window's.

>>> from datetime import date
>>> from decimal import Decimal
>>> from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
>>> from sealbill.domain.catalog import PlanCatalog
>>> from sealbill.domain.subscriptions import Phase, Subscription
>>> api = lambda price: (Charge("api", ChargeModel.PER_UNIT, "API", "API",
...     ChargeProperties(unit_price=Decimal(price)), metric_code="calls"),)
>>> catalog = PlanCatalog([Plan("a", "A", Interval.YEAR, "EUR", 1, date(2020, 1, 1), api("1")),
...                        Plan("b", "B", Interval.YEAR, "EUR", 1, date(2020, 1, 1), api("2"))])
>>> a, b = date(2024, 1, 1), date(2024, 3, 10)
>>> sub = Subscription("s", "C-1", Interval.YEAR, a, (Phase("a", a, b), Phase("b", b)))
>>> april = Period(date(2024, 4, 1), date(2024, 5, 1))
>>> [(s.plan.code, str(s.start), str(s.end)) for s in usage_segments(sub, catalog, april)]
[('a', '2024-03-01', '2024-03-10'), ('b', '2024-03-10', '2024-04-01')]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sealbill.domain.catalog import Interval, Plan, PlanCatalog
from sealbill.domain.subscriptions import Period, Subscription, UsageScope, period_containing


@dataclass(frozen=True, slots=True)
class UsageSegment:
    """Usage of ``[start, end)`` of ``window``, rated with ``plan`` (a copy of the plan version
    in force holding only the usage charges of this cadence)."""

    cadence: Interval
    window: Period
    start: date
    end: date
    plan: Plan

    @property
    def scope(self) -> UsageScope:
        return UsageScope(self.plan, midnight(self.start), midnight(self.end),
                          midnight(self.window.end) - midnight(self.window.start))

    @property
    def span(self) -> Period:
        return Period(self.start, self.end)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def due_windows(subscription: Subscription, period: Period) -> list[tuple[Interval, Period]]:
    """For each cadence, the usage window that ends when ``period`` starts, if one does."""
    last_day = period.start - timedelta(days=1)
    found = []
    for cadence in Interval:
        window = period_containing(subscription.billing_anchor, cadence, last_day)
        if window.end == period.start:
            found.append((cadence, window))
    return found


def usage_segments(subscription: Subscription, catalog: PlanCatalog,
                   period: Period) -> list[UsageSegment]:
    """The usage the invoice opening ``period`` bills, one segment per (window, phase) with
    charges of that window's cadence (:class:`~sealbill.domain.catalog.CatalogError` when a
    phase's plan has no price in force)."""
    segments = []
    for cadence, window in due_windows(subscription, period):
        for phase, start, end in subscription.billed_segments(window):
            plan = catalog.price_for(phase.plan_code, start)
            charges = tuple(c for c in plan.usage_charges if c.usage_cadence is cadence)
            if charges:
                segments.append(UsageSegment(cadence, window, start, end,
                                             replace(plan, charges=charges)))
    return segments


def usage_window_start(period: Period, catalog_has_yearly_usage: bool) -> date:
    """The earliest day whose usage the invoices opening ``period`` may bill."""
    months = 12 if catalog_has_yearly_usage else 1
    year, month = divmod(period.start.year * 12 + period.start.month - 1 - months, 12)
    return date(year, month + 1, 1)
