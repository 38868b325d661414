"""A plainly written reference calculator for the documents of a monthly billing run, sharing no
code with ``sealbill.domain``: it reads the rules as the README and issue 12 state them and
computes with ``fractions.Fraction`` (exact), rounding once per line and once per VAT group.

The rules it implements (``reference_tax.py`` holds VAT, OSS, currencies and credit):

- a subscription's billing periods start on the 1st of the month it started in and last one
  month or, on a yearly plan, twelve; the run of calendar month ``M`` bills, per subscription,
  the fixed fees of its own period if that period starts on ``M`` (in advance) with the
  proration lines of the previous period, and every usage window that ends on ``M``: a
  monthly window for charges on the monthly cadence (the default, also on a yearly plan), the
  subscription's yearly period for charges billed yearly;
- in advance: the plan of the first billable day of the period, from that day to the period
  end; the part of a fee for days ``[a, b)`` of a period is ``share(b) - share(a)`` with
  ``share(d) = fee × d / period days`` rounded half-up, in whole invoice units of the currency;
  the next period's invoice credits the unused days of the plan billed in advance and charges
  each later plan for its days (upgrades, downgrades, immediate cancellations);
- trial days (before the trial's end) are free; a cancellation "at period end" ends the
  subscription at the end of its billing period (a year on a yearly plan);
- usage is split at every plan change, each part rated with the plan in force then; a
  time-weighted metric holds each group's level (``group_by``) from its last event, carried
  over from any earlier time, and its quantity is the integral of the summed levels over the
  part divided by the length of the whole usage window;
- charge models: per unit, graduated and volume tiers (with flat fees per tier reached),
  package (started packages beyond free units), percentage (of the metric's total), and
  percentage per transaction (rate + fixed fee per transaction, clamped to a minimum and a
  maximum when set: then one line of the clamped fees);
- a late event (recorded after a run) counts in every run after it was recorded: the windows
  billed then, and the levels carried into them; a window already billed is not reopened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from tests.oracle.reference_tax import half_up, to_minor_units


@dataclass(frozen=True)
class RefTier:
    up_to: int | None
    price: Fraction
    flat: Fraction = Fraction(0)


@dataclass(frozen=True)
class RefCharge:
    #: fee, unit, graduated, volume, package, percentage, per_transaction
    model: str
    metric: str | None = None
    price: Fraction = Fraction(0)  # fee amount, unit price, package price
    tiers: tuple[RefTier, ...] = ()
    package_size: int = 1
    free_units: int = 0
    rate: Fraction = Fraction(0)  # percent
    fixed: Fraction = Fraction(0)  # per transaction
    low: Fraction | None = None  # min per transaction
    high: Fraction | None = None  # max per transaction
    vat_class: str = "standard"
    yearly_usage: bool = False  # usage billed on the yearly cadence


@dataclass(frozen=True)
class RefPlan:
    code: str
    yearly: bool
    charges: tuple[RefCharge, ...]


@dataclass(frozen=True)
class RefEvent:
    event_id: str
    metric: str
    at: datetime
    value: Fraction | None
    props: tuple[tuple[str, str], ...] = ()
    late: bool = False  # recorded after the first run


@dataclass
class RefAccount:
    reference: str
    kind: str  # see reference_tax.KINDS
    country: str
    first_plan: str
    start: date
    change: tuple[date, str] | None = None
    cancel: tuple[date, bool] | None = None  # (day, at period end)
    trial_end: date | None = None  # first billed day
    events: list[RefEvent] = field(default_factory=list)
    credits: tuple[int, int] = (0, 0)  # manual credit (minor units) before each finalization


@dataclass(frozen=True)
class RefLine:
    amount: int  # ISO minor units
    vat_class: str
    start: date
    end: date  # exclusive


Span = tuple[date, date]
AGGREGATION = {"calls": "sum", "pay": "sum", "hits": "count", "peak": "max",
               "users": "unique_count", "last": "latest", "gb": "time_weighted_sum",
               "seats": "time_weighted_sum"}
FIELD = {"users": "user"}
GROUP_BY = {"seats": "pool"}


def add_months(first_of_month: date, months: int) -> date:
    year, month = divmod(first_of_month.year * 12 + first_of_month.month - 1 + months, 12)
    return date(year, month + 1, 1)


def own_period(anchor: date, months: int, day: date) -> Span:
    """The period of ``months`` months from ``anchor`` (a 1st) that contains ``day``."""
    elapsed = day.year * 12 + day.month - anchor.year * 12 - anchor.month
    start = add_months(anchor, (elapsed // months) * months)
    return start, add_months(start, months)


class Subscription:
    """One account's subscription as the oracle sees it."""

    def __init__(self, acc: RefAccount, plans: dict[str, RefPlan]) -> None:
        self.acc, self.plans = acc, plans
        self.months = 12 if plans[acc.first_plan].yearly else 1
        self.anchor = acc.start.replace(day=1)

    def period(self, day: date) -> Span:
        return own_period(self.anchor, self.months, day)

    def phases(self) -> list[tuple[str, date, date | None]]:
        acc = self.acc
        if acc.change:
            phases = [(acc.first_plan, acc.start, acc.change[0]),
                      (acc.change[1], acc.change[0], None)]
        else:
            phases = [(acc.first_plan, acc.start, None)]
        if acc.cancel:
            day, at_end = acc.cancel
            ends = self.period(day)[1] if at_end else day
            phases = [(p, s, ends if e is None else min(e, ends)) for p, s, e in phases
                      if s < ends]
        return phases

    def billed(self, span: Span) -> list[tuple[str, date, date]]:
        """(plan, start, end) of each phase's billable days in ``span`` (trial excluded)."""
        free_until = max(span[0], self.acc.trial_end or span[0])
        out = []
        for plan, start, end in self.phases():
            s = max(free_until, start)
            e = span[1] if end is None else min(span[1], end)
            if s < e:
                out.append((plan, s, e))
        return out


def _share(fee: int, days: int, period_days: int) -> int:
    return (fee * days) // period_days + (1 if 2 * ((fee * days) % period_days) >= period_days
                                          else 0)


def _part(fee: int, start: date, end: date, period: Span) -> int:
    total = (period[1] - period[0]).days

    def index(day: date) -> int:
        return min(max((day - period[0]).days, 0), total)

    return _share(fee, index(end), total) - _share(fee, index(start), total)


def _fees(plan: RefPlan) -> list[RefCharge]:
    return [c for c in plan.charges if c.model == "fee"]


def fee_lines(sub: Subscription, own: Span, currency: str) -> list[RefLine]:
    """Advance fees of ``own`` and the prorations of the period before it."""
    step = to_minor_units(1, currency)
    lines = []
    advance = sub.billed(own)
    if advance:
        plan, start, _ = advance[0]
        for fee in _fees(sub.plans[plan]):
            units = half_up(fee.price, currency)
            lines.append(RefLine(_part(units, start, own[1], own) * step, fee.vat_class,
                                 start, own[1]))
    previous = sub.period(own[0] - timedelta(days=1))
    segments = sub.billed(previous)
    if not segments:
        return lines
    plan, _, first_end = segments[0]
    for fee in _fees(sub.plans[plan]):
        credit = _part(half_up(fee.price, currency), first_end, previous[1], previous)
        if credit:
            lines.append(RefLine(-credit * step, fee.vat_class, first_end, previous[1]))
    for plan, start, end in segments[1:]:
        for fee in _fees(sub.plans[plan]):
            charge = _part(half_up(fee.price, currency), start, end, previous)
            if charge:
                lines.append(RefLine(charge * step, fee.vat_class, start, end))
    return lines


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _key(event: RefEvent) -> tuple[datetime, str]:
    return event.at, event.event_id


def quantity(metric: str, events: list[RefEvent], span: Span, window: Span) -> Fraction:
    """The metric's aggregate over ``span`` (part of the usage ``window``)."""
    lo, hi = _midnight(span[0]), _midnight(span[1])
    mine = sorted((e for e in events if e.metric == metric), key=_key)
    inside = [e for e in mine if lo <= e.at < hi]
    how = AGGREGATION[metric]
    if how == "sum":
        return sum((e.value or Fraction(0) for e in inside), Fraction(0))
    if how == "count":
        return Fraction(len(inside))
    if how == "max":
        return max((e.value or Fraction(0) for e in inside), default=Fraction(0))
    if how == "unique_count":
        return Fraction(len({dict(e.props)[FIELD[metric]] for e in inside}))
    if how == "latest":
        return (inside[-1].value or Fraction(0)) if inside else Fraction(0)
    group = GROUP_BY.get(metric)
    levels: dict[str, Fraction] = {}
    for event in mine:
        if event.at < lo:  # sorted: the last one of each group wins
            levels[dict(event.props).get(group or "", "") if group else ""] = \
                event.value or Fraction(0)
    since, area = lo, Fraction(0)
    for event in inside:
        area += sum(levels.values(), Fraction(0)) * _micros(event.at - since)
        levels[dict(event.props).get(group or "", "") if group else ""] = \
            event.value or Fraction(0)
        since = event.at
    area += sum(levels.values(), Fraction(0)) * _micros(hi - since)
    return area / _micros(_midnight(window[1]) - _midnight(window[0]))


def _tiered(charge: RefCharge, q: Fraction) -> list[Fraction]:
    amounts, lower = [], Fraction(0)
    for tier in charge.tiers:
        top = q if tier.up_to is None else min(q, Fraction(tier.up_to))
        reached = tier.up_to is None or q <= tier.up_to
        if charge.model == "graduated" or reached:
            amounts.append((top - lower if charge.model == "graduated" else q) * tier.price)
            if tier.flat:
                amounts.append(tier.flat)
        if reached:
            return amounts
        lower = Fraction(tier.up_to or 0)
    raise AssertionError("the last tier is open")


def usage_amounts(charge: RefCharge, events: list[RefEvent], span: Span,
                  window: Span) -> list[Fraction]:
    """The exact amount of each line ``charge`` bills for ``span``."""
    if charge.model == "per_transaction":
        lo, hi = _midnight(span[0]), _midnight(span[1])
        paid = [e.value or Fraction(0) for e in events
                if e.metric == charge.metric and lo <= e.at < hi]
        if not paid:
            return []
        if charge.low is None and charge.high is None:
            base = [sum(paid, Fraction(0)) * charge.rate / 100]
            return base + ([len(paid) * charge.fixed] if charge.fixed else [])
        fees = []
        for amount in paid:
            fee = amount * charge.rate / 100 + charge.fixed
            fee = fee if charge.low is None else max(fee, charge.low)
            fees.append(fee if charge.high is None else min(fee, charge.high))
        return [sum(fees, Fraction(0))]
    q = quantity(charge.metric or "", events, span, window)
    if q == 0:
        return []
    if charge.model == "unit":
        return [q * charge.price]
    if charge.model == "percentage":
        return [q * charge.rate / 100]
    if charge.model == "package":
        over = max(Fraction(0), q - charge.free_units)
        packs = -(-over.numerator // (over.denominator * charge.package_size))
        return [packs * charge.price] if packs else []
    return _tiered(charge, q)


def usage_lines(sub: Subscription, run: date, events: list[RefEvent],
                currency: str) -> list[RefLine]:
    """Usage of every window ending when the run's month starts, split at plan changes."""
    lines = []
    for yearly, months in ((False, 1), (True, 12)):
        window = own_period(sub.anchor, months, run - timedelta(days=1))
        if window[1] != run:
            continue
        for plan, start, end in sub.billed(window):
            for charge in sub.plans[plan].charges:
                if charge.model == "fee" or charge.yearly_usage != yearly:
                    continue
                lines += [RefLine(to_minor_units(half_up(amount, currency), currency),
                                  charge.vat_class, start, end)
                          for amount in usage_amounts(charge, events, (start, end), window)]
    return lines


def account_lines(acc: RefAccount, plans: dict[str, RefPlan], run: date, currency: str,
                  with_late: bool) -> list[RefLine]:
    """The lines of ``acc``'s document in the run of the month starting ``run``;
    ``with_late``: the late events were recorded before this run."""
    sub = Subscription(acc, plans)
    own = sub.period(run)
    fees_due = own[0] == run
    events = acc.events if with_late else [e for e in acc.events if not e.late]
    usage = usage_lines(sub, run, events, currency)
    lines = fee_lines(sub, own, currency) if fees_due else []
    return lines + usage


