"""Subscriptions, billing periods and day-based proration of fixed fees.

A :class:`Subscription` is a history of :class:`Phase` objects (a plan code over ``[start,
end)``), an optional trial and an optional cancellation. Billing periods are anchored on
``billing_anchor``: a monthly period starts on the anchor's day of month, clamped to the month's
last day (anchor 31 → 31 Jan, 29 Feb, 31 Mar, 30 Apr...), always computed from the anchor so the
day never drifts; a yearly period on the anchor's day and month.

Fixed fees are billed in advance: the invoice opening period ``P`` charges the phase in effect on
the first billable day of ``P`` for the rest of ``P`` (full fee when that day is ``P.start``).
When that phase ends inside ``P`` (plan change, immediate cancellation) the next invoice credits
the unused part and charges each later phase for its days (:func:`proration_lines`). Usage of a
period is rated with the plan of its last billable phase (:func:`usage_scope`).

Invariants:

- every date range is half-open ``[start, end)``; trial days (before ``trial_end``) are free;
- :func:`prorate` rounds half-up once, from an ``int`` of minor units;
- the amount of a segment ``[a, b)`` of a period is ``prorate(fee, b) - prorate(fee, a)``
  (days counted from the period start), so the segments of any split of a period sum *exactly*
  to the fee: advance − credit = the part used, and credit + used part = the full fee.

>>> monthly = period_containing(date(2024, 1, 31), Interval.MONTH, date(2024, 2, 10))
>>> monthly.start, monthly.end, monthly.days
(datetime.date(2024, 1, 31), datetime.date(2024, 2, 29), 29)
>>> used = prorate(1000, 1, 16)  # 62.5 -> 63
>>> used, 1000 - used, prorate(1000, 15, 16)  # credit = complement; rounding 937.5 would add 1
(63, 937, 938)
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from sealbill.domain.catalog import CatalogError, Charge, Interval, Plan, PlanCatalog
from sealbill.domain.money import document_step, to_major, to_minor


class SubscriptionError(ValueError):
    """A subscription or proration input that sealbill refuses."""


@dataclass(frozen=True, slots=True)
class Period:
    """The billing period ``[start, end)``."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def day_index(self, day: date) -> int:
        """Days from ``start`` to ``day``, clamped to ``[0, days]``."""
        return min(max((day - self.start).days, 0), self.days)


def shift_months(anchor: date, months: int) -> date:
    """``anchor`` moved by ``months``, its day clamped to the target month's length.

    >>> shift_months(date(2024, 1, 31), 1), shift_months(date(2024, 1, 31), 3)
    (datetime.date(2024, 2, 29), datetime.date(2024, 4, 30))
    """
    year, month = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    return date(year, month + 1, min(anchor.day, calendar.monthrange(year, month + 1)[1]))


def period_containing(anchor: date, interval: Interval, on: date) -> Period:
    """The period of a subscription anchored on ``anchor`` that contains ``on``.

    >>> period_containing(date(2024, 2, 29), Interval.YEAR, date(2025, 3, 1))
    Period(start=datetime.date(2025, 2, 28), end=datetime.date(2026, 2, 28))
    """
    step = interval.months
    k = (on.year * 12 + on.month - anchor.year * 12 - anchor.month) // step
    if shift_months(anchor, k * step) > on:
        k -= 1
    return Period(shift_months(anchor, k * step), shift_months(anchor, (k + 1) * step))


def prorate(amount_minor: int, days_used: int, days_in_period: int) -> int:
    """``amount_minor × days_used / days_in_period`` rounded half-up (away from zero on ties).

    >>> prorate(1000, 15, 30), prorate(1, 1, 2), prorate(-1, 1, 2), prorate(999, 31, 31)
    (500, 1, -1, 999)
    """
    if type(amount_minor) is not int or type(days_used) is not int:
        raise SubscriptionError("prorate takes int minor units and int days")
    if type(days_in_period) is not int or days_in_period <= 0:
        raise SubscriptionError(f"days_in_period must be a positive int, got {days_in_period!r}")
    if not 0 <= days_used <= days_in_period:
        raise SubscriptionError(f"days_used {days_used} outside [0, {days_in_period}]")
    quotient, rest = divmod(abs(amount_minor) * days_used, days_in_period)
    quotient += 1 if 2 * rest >= days_in_period else 0
    return quotient if amount_minor >= 0 else -quotient


def segment_amount(amount_minor: int, period: Period, start: date, end: date) -> int:
    """The part of a period's ``amount_minor`` due for ``[start, end)`` (clamped to the period).

    >>> p = Period(date(2024, 4, 1), date(2024, 5, 1))
    >>> parts = [segment_amount(1000, p, a, b) for a, b in
    ...          ((p.start, date(2024, 4, 8)), (date(2024, 4, 8), date(2024, 4, 20)),
    ...           (date(2024, 4, 20), p.end))]
    >>> parts, sum(parts)
    ([233, 400, 367], 1000)
    """
    used_to_end = prorate(amount_minor, period.day_index(end), period.days)
    return used_to_end - prorate(amount_minor, period.day_index(start), period.days)


@dataclass(frozen=True, slots=True)
class Phase:
    """``plan_code`` is in effect on ``[start, end)``; ``end=None``: until further notice."""

    plan_code: str
    start: date
    end: date | None = None


class CancellationMode(StrEnum):
    AT_PERIOD_END = "at_period_end"
    IMMEDIATE = "immediate"


@dataclass(frozen=True, slots=True)
class Cancellation:
    requested_on: date
    mode: CancellationMode = CancellationMode.AT_PERIOD_END


@dataclass(frozen=True, slots=True)
class Subscription:
    """``trial_end`` is the first *billed* day; phases are sorted and do not overlap."""

    subscription_id: str
    account_reference: str
    interval: Interval
    billing_anchor: date
    phases: tuple[Phase, ...]
    trial_end: date | None = None
    cancellation: Cancellation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", tuple(self.phases))

    def period_containing(self, on: date) -> Period:
        return period_containing(self.billing_anchor, self.interval, on)

    def previous_period(self, period: Period) -> Period:
        return self.period_containing(period.start - timedelta(days=1))

    @property
    def ends_on(self) -> date | None:
        """Exclusive end after cancellation (immediate: that day; else: end of its period)."""
        cancel = self.cancellation
        if cancel is None:
            return None
        if cancel.mode is CancellationMode.IMMEDIATE:
            return cancel.requested_on
        return self.period_containing(cancel.requested_on).end

    def effective_phases(self) -> tuple[Phase, ...]:
        """The phases cut at :attr:`ends_on`."""
        end = self.ends_on
        if end is None:
            return self.phases
        return tuple(Phase(p.plan_code, p.start, end if p.end is None else min(p.end, end))
                     for p in self.phases if p.start < end)

    def billed_segments(self, period: Period) -> list[tuple[Phase, date, date]]:
        """``(phase, start, end)`` of each phase's billable days in ``period`` (trial excluded)."""
        free_until = max(period.start, self.trial_end or period.start)
        segments = []
        for phase in self.effective_phases():
            start = max(free_until, phase.start)
            end = period.end if phase.end is None else min(period.end, phase.end)
            if start < end:
                segments.append((phase, start, end))
        return segments


def validate_subscription(subscription: Subscription, catalog: PlanCatalog) -> list[str]:
    """Every problem of ``subscription`` against ``catalog``; empty means billable."""
    where = f"subscription {subscription.subscription_id}"
    problems = [f"{where}: {name}: empty" for name in ("subscription_id", "account_reference")
                if not getattr(subscription, name)]
    phases = subscription.phases
    if not phases:
        problems.append(f"{where}: phases: at least one phase is required")
    currencies = set()
    for i, phase in enumerate(phases):
        at = f"{where}: phases[{i}]"
        if phase.end is not None and phase.end <= phase.start:
            problems.append(f"{at}.end: {phase.end} is not after start {phase.start}")
        if i + 1 < len(phases):
            following = phases[i + 1]
            if phase.end is None or following.start < phase.end:
                problems.append(f"{at}.end: overlaps phases[{i + 1}] starting {following.start}")
        try:
            plan = catalog.price_for(phase.plan_code, phase.start)
        except CatalogError as error:
            problems.append(f"{at}.plan_code: {error}")
            continue
        currencies.add(plan.currency)
        if plan.interval != subscription.interval:
            problems.append(f"{at}.plan_code: plan {plan.code} is billed per {plan.interval}, "
                            f"the subscription per {subscription.interval}")
    if len(currencies) > 1:
        problems.append(f"{where}: phases: plans in several currencies {sorted(currencies)}")
    cancel = subscription.cancellation
    if cancel is not None and phases and cancel.requested_on < phases[0].start:
        problems.append(f"{where}: cancellation.requested_on: before the first phase")
    return problems


class FeeKind(StrEnum):
    FIXED_FEE = "fixed_fee"
    PRORATION_CREDIT = "proration_credit"
    PRORATION_CHARGE = "proration_charge"


_WORDS = {
    "fr": {FeeKind.FIXED_FEE: "", FeeKind.PRORATION_CREDIT: "Avoir au prorata : ",
           FeeKind.PRORATION_CHARGE: "Prorata : ", "days": "jours", "to": "au"},
    "en": {FeeKind.FIXED_FEE: "", FeeKind.PRORATION_CREDIT: "Prorated credit: ",
           FeeKind.PRORATION_CHARGE: "Prorated charge: ", "days": "days", "to": "to"},
}


def format_date(day: date, locale: str) -> str:
    """``31/03/2024`` in French, ``2024-03-31`` otherwise."""
    return day.strftime("%d/%m/%Y") if locale != "en" else day.isoformat()


@dataclass(frozen=True, slots=True)
class FixedFeeLine:
    """A fixed-fee invoice line: ``quantity`` (1, or -1 for a credit) × ``unit_price`` (major
    units, never negative) = ``amount_minor``, for the days ``[start, end)`` of ``period``."""

    kind: FeeKind
    plan: Plan
    charge: Charge
    period: Period
    start: date
    end: date
    quantity: Decimal
    unit_price: Decimal
    amount_minor: int

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def description(self, locale: str) -> str:
        return _fee_text(self.kind, self.charge.description(locale), self.plan.name,
                         self.period, self.start, self.end, locale)


@lru_cache(maxsize=4096)
def _fee_text(kind: FeeKind, charge_text: str, plan_name: str, period: Period, start: date,
              end: date, locale: str) -> str:
    """:meth:`FixedFeeLine.description` of its inputs (pure: cached, since the same fee and
    period recur on most accounts of a run)."""
    words = _WORDS.get(locale, _WORDS["fr"])
    last_day = format_date(end - timedelta(days=1), locale)
    text = (f"{words[kind]}{charge_text} - {plan_name} "
            f"({format_date(start, locale)} {words['to']} {last_day}")
    days = (end - start).days
    if days != period.days:
        text += f", {days}/{period.days} {words['days']}"
    return text + ")"


def _fee_lines(
    kind: FeeKind, plan: Plan, period: Period, start: date, end: date
) -> list[FixedFeeLine]:
    lines = []
    for charge in plan.fixed_charges:
        full = to_minor(charge.amount(Decimal(1)), plan.currency)
        # Prorated in the invoice's step (10 fils for a 3-decimal currency): every amount of
        # an invoice stays a multiple of it (money.document_step).
        step = document_step(plan.currency)
        amount = segment_amount(full // step, period, start, end) * step
        if amount == 0 and kind is not FeeKind.FIXED_FEE:
            continue
        sign = -1 if kind is FeeKind.PRORATION_CREDIT else 1
        lines.append(FixedFeeLine(kind, plan, charge, period, start, end, Decimal(sign),
                                  to_major(amount, plan.currency), sign * amount))
    return lines


def _advance(
    subscription: Subscription, catalog: PlanCatalog, period: Period
) -> tuple[Plan, date] | None:
    segments = subscription.billed_segments(period)
    if not segments:
        return None
    phase, start, _ = segments[0]
    return catalog.price_for(phase.plan_code, start), start


def advance_fee_lines(
    subscription: Subscription, catalog: PlanCatalog, period: Period
) -> list[FixedFeeLine]:
    """Fixed fees billed in advance for ``period``: the first billable phase, to period end."""
    advance = _advance(subscription, catalog, period)
    if advance is None:
        return []
    plan, start = advance
    return _fee_lines(FeeKind.FIXED_FEE, plan, period, start, period.end)


def proration_lines(
    subscription: Subscription,
    catalog: PlanCatalog,
    period: Period,
    billed: tuple[Plan, date] | None = None,
) -> list[FixedFeeLine]:
    """Corrections of the advance billing of ``period`` given the history: a credit for the
    days the advance-billed plan was not used, a charge for each later phase's days.

    ``billed`` is ``(plan version, first billed day)`` as the opening invoice billed it;
    by default it is recomputed from the history (:func:`advance_fee_lines`). If the history no
    longer starts with that plan on that day, the whole advance is credited.
    """
    segments = subscription.billed_segments(period)
    billed = billed or _advance(subscription, catalog, period)
    if billed is None:
        return []
    plan, start = billed
    if segments and (segments[0][0].plan_code, segments[0][1]) == (plan.code, start):
        first_end, segments = segments[0][2], segments[1:]
    else:
        first_end = start
    lines = _fee_lines(FeeKind.PRORATION_CREDIT, plan, period, first_end, period.end)
    for phase, seg_start, seg_end in segments:
        later = catalog.price_for(phase.plan_code, seg_start)
        lines += _fee_lines(FeeKind.PRORATION_CHARGE, later, period, seg_start, seg_end)
    return lines


def fixed_fee_lines(
    subscription: Subscription, catalog: PlanCatalog, period: Period
) -> list[FixedFeeLine]:
    """The fixed-fee lines of the invoice that opens ``period``: its advance fees, then the
    proration lines of the previous period."""
    previous = subscription.previous_period(period)
    return (advance_fee_lines(subscription, catalog, period)
            + proration_lines(subscription, catalog, previous))


@dataclass(frozen=True, slots=True)
class UsageScope:
    """What the usage of a period is rated with: the plan version of its last billable phase,
    the instants ``[start, end)`` whose events count (trial excluded, midnight in the account's
    zone) and the real length of the whole period (denominator of time-weighted sums)."""

    plan: Plan
    start: datetime
    end: datetime
    period_length: timedelta


def usage_scope(
    subscription: Subscription, catalog: PlanCatalog, period: Period, tz: tzinfo = UTC
) -> UsageScope | None:
    """The :class:`UsageScope` of ``period``; ``None`` when none of its days is billable."""
    segments = subscription.billed_segments(period)
    if not segments:
        return None
    phase, last_start, _ = segments[-1]
    start, end = (datetime.combine(day, time(), tz) for day in (period.start, period.end))
    return UsageScope(catalog.price_for(phase.plan_code, last_start),
                      datetime.combine(segments[0][1], time(), tz),
                      datetime.combine(segments[-1][2], time(), tz),
                      end.astimezone(UTC) - start.astimezone(UTC))
