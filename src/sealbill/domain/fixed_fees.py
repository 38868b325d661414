"""Fixed fees billed in advance, with day-based proration of what changed in arrears.

The invoice of period P carries:
- the fixed fees of P, in advance, at the plan in effect on P's first day;
- an adjustment for P-1: what P-1 should have cost (each phase's fee × its days / the days of
  P-1, trial days free) minus what was billed in advance for it. A plan change mid-period thus
  appears as a credit of the unused part of the old plan and a charge of the new one.

Invariants:
- proration is by whole days, half-up once per line (``prorate``);
- a subscription active for all of a period costs exactly the plan's fee for it;
- credit + charge over a split period equals the fee of each plan for its days.

>>> prorate(2900, 15, 30)
1450
>>> prorate(1000, 1, 3)
333
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal


def prorate(amount_minor: int, days_used: int, days_in_period: int) -> int:
    """``amount × days_used / days_in_period`` in minor units, rounded half-up."""
    if days_in_period <= 0 or not 0 <= days_used <= days_in_period:
        raise ValueError(f"days_used {days_used} outside 0..{days_in_period}")
    exact = Decimal(amount_minor) * days_used / days_in_period
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Phase:
    """A plan held from ``start`` to ``end`` (exclusive; None = still running)."""

    plan_code: str
    start: date
    end: date | None = None


@dataclass(frozen=True, slots=True)
class FeeSpan:
    """``days`` of ``days_in_period`` of ``plan_code``; ``sign`` -1 for a credit."""

    plan_code: str
    days: int
    days_in_period: int
    sign: int
    start: date
    end: date
    reason: str  # "advance" | "adjustment_charge" | "adjustment_credit"


def _overlap(start: date, end: date | None, lo: date, hi: date) -> tuple[date, date] | None:
    s, e = max(start, lo), min(end or hi, hi)
    return (s, e) if s < e else None


def _paid_from(phase: Phase, trial_end: date | None) -> date:
    return max(phase.start, trial_end) if trial_end else phase.start


def fee_spans(phases: list[Phase], previous: tuple[date, date], current: tuple[date, date],
              trial_end: date | None = None, ends_on: date | None = None) -> list[FeeSpan]:
    """The fixed-fee spans for the invoice of ``current`` (see the module docstring)."""
    spans: list[FeeSpan] = []
    prev_start, prev_end = previous
    prev_days = (prev_end - prev_start).days
    billed = _phase_at(phases, prev_start, ends_on)
    actual = []
    for phase in phases:
        paid = _overlap(_paid_from(phase, trial_end), _end(phase, ends_on), prev_start,
                        prev_end)
        if paid:
            actual.append((phase.plan_code, paid))
    billed_paid = billed is not None and (trial_end is None or trial_end <= prev_start)
    if not (billed_paid and len(actual) == 1 and actual[0][1] == (prev_start, prev_end)
            and billed is not None and actual[0][0] == billed.plan_code):
        if billed_paid and billed is not None:
            spans.append(FeeSpan(billed.plan_code, prev_days, prev_days, -1, prev_start,
                                 prev_end, "adjustment_credit"))
        for plan_code, (s, e) in actual:
            spans.append(FeeSpan(plan_code, (e - s).days, prev_days, 1, s, e,
                                 "adjustment_charge"))
    cur_start, cur_end = current
    advance = _phase_at(phases, cur_start, ends_on)
    if advance is not None and (trial_end is None or trial_end <= cur_start):
        days = (cur_end - cur_start).days
        spans.append(FeeSpan(advance.plan_code, days, days, 1, cur_start, cur_end, "advance"))
    return _net(spans)


def _end(phase: Phase, ends_on: date | None) -> date | None:
    if ends_on is None:
        return phase.end
    return min(phase.end, ends_on) if phase.end else ends_on


def _phase_at(phases: list[Phase], day: date, ends_on: date | None) -> Phase | None:
    for phase in phases:
        end = _end(phase, ends_on)
        if phase.start <= day and (end is None or day < end):
            return phase
    return None


def _net(spans: list[FeeSpan]) -> list[FeeSpan]:
    """Drop a credit and a charge that cancel out exactly (same plan, same full span)."""
    result = list(spans)
    for credit in [s for s in spans if s.sign < 0]:
        twin = next((s for s in result if s.sign > 0 and s.reason == "adjustment_charge"
                     and (s.plan_code, s.start, s.end) == (credit.plan_code, credit.start,
                                                           credit.end)), None)
        if twin is not None:
            result.remove(twin)
            result.remove(credit)
    return result
