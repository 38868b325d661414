"""A plainly written reference calculator for the invoice of one billing run, sharing no code
with ``sealbill.domain``: it reads the rules as the README states them and computes with
``fractions.Fraction`` (exact) and one half-up rounding to cents per line and per VAT group.

Scope (what the oracle test generates): monthly plans in EUR with an optional flat fixed fee
and usage charges (per unit, graduated, volume, package) on three metrics (``calls`` summed,
``peak`` maximum, ``gb`` time-weighted with its level carried from before the month); one
subscription per account started long ago, with an optional plan change and an optional
cancellation in the usage month, an optional trial ending in the billed month; French business
buyers (VAT S 20 %) and buyers outside the EU (O, no VAT). The run bills November 2026: the
November fee in advance, October's prorations and October's usage in arrears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction

OCT, NOV, DEC = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)


@dataclass(frozen=True)
class RefTier:
    up_to: int | None
    price: Fraction
    flat: Fraction = Fraction(0)


@dataclass(frozen=True)
class RefCharge:
    model: str  # "fee", "unit", "graduated", "volume", "package"
    metric: str | None = None
    price: Fraction = Fraction(0)  # fee amount, unit price, package price
    tiers: tuple[RefTier, ...] = ()
    package_size: int = 1
    free_units: int = 0


@dataclass(frozen=True)
class RefPlan:
    code: str
    charges: tuple[RefCharge, ...]


@dataclass(frozen=True)
class RefEvent:
    metric: str
    at: datetime
    value: Fraction


@dataclass
class RefAccount:
    reference: str
    outside_eu: bool
    first_plan: str
    change: tuple[date, str] | None = None  # (day, new plan) in October
    cancel: tuple[date, bool] | None = None  # (day, at period end) in October
    trial_end: date | None = None  # first billed day, in November
    events: list[RefEvent] = field(default_factory=list)


@dataclass(frozen=True)
class RefInvoice:
    kind: str  # "invoice" | "credit_note"
    line_amounts: tuple[int, ...]  # cents, sorted
    vat: tuple[tuple[str, str, int, int], ...]  # (category, rate, base, tax) sorted
    total_excl: int
    total_vat: int
    total_incl: int


def cents(value: Fraction) -> int:
    """Half-up (away from zero) to whole cents."""
    sign = -1 if value < 0 else 1
    scaled = abs(value) * 100
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return sign * whole


def _half_up_day_share(fee: int, days: int, period_days: int) -> int:
    whole, rest = divmod(abs(fee) * days, period_days)
    if 2 * rest >= period_days:
        whole += 1
    return whole if fee >= 0 else -whole


def _segment(fee: int, start: date, end: date, period: tuple[date, date]) -> int:
    """The README's rule: the part of ``fee`` for [start, end) is share(end) - share(start)."""
    p_start, p_end = period
    total = (p_end - p_start).days

    def index(day: date) -> int:
        return min(max((day - p_start).days, 0), total)

    return (_half_up_day_share(fee, index(end), total)
            - _half_up_day_share(fee, index(start), total))


def _phases(acc: RefAccount) -> list[tuple[str, date, date | None]]:
    phases: list[tuple[str, date, date | None]] = []
    if acc.change:
        phases = [(acc.first_plan, date(2026, 1, 1), acc.change[0]),
                  (acc.change[1], acc.change[0], None)]
    else:
        phases = [(acc.first_plan, date(2026, 1, 1), None)]
    if acc.cancel:
        day, at_end = acc.cancel
        ends = NOV if at_end else day
        phases = [(p, s, ends if e is None else min(e, ends)) for p, s, e in phases if s < ends]
    return phases


def _billed(acc: RefAccount, period: tuple[date, date]) -> list[tuple[str, date, date]]:
    free_until = max(period[0], acc.trial_end or period[0])
    out = []
    for plan, start, end in _phases(acc):
        s = max(free_until, start)
        e = period[1] if end is None else min(period[1], end)
        if s < e:
            out.append((plan, s, e))
    return out


def _fee(plan: RefPlan) -> int | None:
    fees = [c for c in plan.charges if c.model == "fee"]
    return cents(fees[0].price) if fees else None


def _fixed_lines(acc: RefAccount, plans: dict[str, RefPlan]) -> list[int]:
    lines = []
    november = _billed(acc, (NOV, DEC))
    if november:
        plan, start, _ = november[0]
        fee = _fee(plans[plan])
        if fee is not None:
            lines.append(_segment(fee, start, DEC, (NOV, DEC)))
    october = _billed(acc, (OCT, NOV))
    if october:
        first_plan, _, first_end = october[0]
        fee = _fee(plans[first_plan])
        if fee is not None and (credit := _segment(fee, first_end, NOV, (OCT, NOV))):
            lines.append(-credit)
        for plan, start, end in october[1:]:
            fee = _fee(plans[plan])
            if fee is not None and (charge := _segment(fee, start, end, (OCT, NOV))):
                lines.append(charge)
    return lines


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _quantity(metric: str, events: list[RefEvent], start: date, end: date) -> Fraction:
    lo, hi = _midnight(start), _midnight(end)
    mine = sorted((e for e in events if e.metric == metric), key=lambda e: e.at)
    inside = [e for e in mine if lo <= e.at < hi]
    if metric == "calls":
        return sum((e.value for e in inside), Fraction(0))
    if metric == "peak":
        return max((e.value for e in inside), default=Fraction(0))
    # gb: the level held since the last event before `lo`, integrated over [lo, hi), divided
    # by the whole month's length.
    before = [e for e in mine if e.at < lo]
    level = before[-1].value if before else Fraction(0)
    since, area = lo, Fraction(0)
    for event in inside:
        area += level * int((event.at - since).total_seconds() * 1_000_000)
        level, since = event.value, event.at
    area += level * int((hi - since).total_seconds() * 1_000_000)
    month = int((_midnight(NOV) - _midnight(OCT)).total_seconds() * 1_000_000)
    return area / month


def _usage_amounts(charge: RefCharge, q: Fraction) -> list[int]:
    if q == 0:
        return []
    if charge.model == "unit":
        return [cents(q * charge.price)]
    if charge.model == "package":
        over = max(Fraction(0), q - charge.free_units)
        packs = -(-over.numerator // (over.denominator * charge.package_size)) if over else 0
        return [cents(packs * charge.price)] if packs else []
    amounts, lower = [], Fraction(0)
    for tier in charge.tiers:
        top = q if tier.up_to is None else min(q, Fraction(tier.up_to))
        inside = tier.up_to is None or q <= tier.up_to
        if charge.model == "graduated":
            amounts.append(cents((top - lower) * tier.price))
            if tier.flat:
                amounts.append(cents(tier.flat))
        elif inside:
            amounts.append(cents(q * tier.price))
            if tier.flat:
                amounts.append(cents(tier.flat))
        if inside:
            return amounts
        lower = Fraction(tier.up_to or 0)
    raise AssertionError("the last tier is open")


def _usage_lines(acc: RefAccount, plans: dict[str, RefPlan]) -> list[int]:
    lines = []
    for plan, start, end in _billed(acc, (OCT, NOV)):
        for charge in plans[plan].charges:
            if charge.model != "fee":
                q = _quantity(charge.metric or "", acc.events, start, end)
                lines += _usage_amounts(charge, q)
    return lines


def reference_invoice(acc: RefAccount, plans: dict[str, RefPlan]) -> RefInvoice | None:
    """The document the November run issues for ``acc`` (``None``: nothing issued)."""
    lines = _fixed_lines(acc, plans) + _usage_lines(acc, plans)
    if not lines:
        return None
    category, rate = ("O", "0") if acc.outside_eu else ("S", "20")
    base = sum(lines)
    vat = cents(Fraction(base) / 100 * Fraction(rate) / 100) if rate != "0" else 0
    kind = "invoice"
    if base + vat < 0:  # credits exceed charges: a credit note with the signs turned
        lines = [-amount for amount in lines]
        base = -base
        vat = cents(Fraction(base) / 100 * Fraction(rate) / 100) if rate != "0" else 0
        kind = "credit_note"
    if base + vat == 0:
        return None  # zero amounts are skipped
    return RefInvoice(kind, tuple(sorted(lines)), ((category, rate, base, vat),), base, vat,
                      base + vat)
