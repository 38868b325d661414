"""Rating from aggregates: most accounts are metered by the database, not event by event.

An account whose usage this run bills is one window — the previous calendar month, whole, on
monthly-cadence charges whose metrics aggregate as a sum, a count, a maximum, a count of distinct
values or a time-weighted sum (no charge priced per transaction) — is rated from one grouped
read per chunk of accounts (``store/billing/usage_aggregates.py``): :class:`AggregatePlan`
decides which accounts those are, :func:`measure_chunk` reads and checks their aggregates, and
:meth:`MeasuredUsage.quantities` (in the rating worker) turns them into the quantities the
per-event meter would have given, the same ``Decimal`` to the exponent. Every other account —
a plan change or a trial inside the window, a yearly usage window, a ``latest`` metric, a value
the database does not read exactly (a negative decimal, an exponent, a missing value: the
per-event path then names the problem) — is rated from its events, as before.
``tests/unit/pipeline/test_usage_aggregates.py`` checks both paths agree (Hypothesis).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.metering import needs_transactions
from sealbill.domain.subscriptions import Period, UsageScope
from sealbill.domain.usage import (
    Aggregation,
    Levels,
    Metric,
    time_weighted_average,
    time_weighted_integral,
)
from sealbill.domain.usage_windows import midnight, usage_segments
from sealbill.pipeline.billing.rate import subscriptions_from_rows
from sealbill.store.billing.usage_aggregates import (
    HALF,
    SCALE_DIGITS,
    plain_aggregates,
    weighted_pieces,
)
from sealbill.store.db import Row

AGGREGATED = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.MAX,
                        Aggregation.UNIQUE_COUNT, Aggregation.TIME_WEIGHTED_SUM})
#: Longest window read by the database: level × µs sums stay below 2^63 (see the store).
LONGEST_WINDOW = timedelta(days=104)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass
class MeasuredUsage:
    """What the database aggregated of one account's events in ``[start, end)`` (plain data,
    sent to a rating worker): ``plain`` per metric code the row of
    :func:`~sealbill.store.billing.usage_aggregates.plain_aggregates` after its code,
    ``weighted`` per time-weighted metric ``(group key, Σ value × µs, first µs)``."""

    start: datetime
    end: datetime
    plain: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    weighted: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)

    def quantities(self, scope: UsageScope, metrics: Iterable[Metric],
                   levels: Mapping[str, Levels]) -> dict[str, Decimal]:
        """The quantity of each of ``metrics`` over ``scope`` (which must be this window);
        ``levels``: the time-weighted metrics' levels carried in at its start."""
        if (scope.start, scope.end) != (self.start, self.end):
            raise RuntimeError(f"usage aggregated over {self.start} .. {self.end}, "
                               f"rated over {scope.start} .. {scope.end}")
        found = {}
        for metric in metrics:
            if metric.aggregation is Aggregation.TIME_WEIGHTED_SUM:
                start, end = micros(self.start), micros(self.end)
                weighted = time_weighted_integral(levels.get(metric.code, {}),
                                                  self.weighted.get(metric.code, ()),
                                                  start, end)
                found[metric.code] = time_weighted_average(
                    weighted, scope.period_length // timedelta(microseconds=1))
            else:
                found[metric.code] = _plain_quantity(metric, self.plain.get(metric.code))
        return found


def _plain_quantity(metric: Metric, row: tuple[Any, ...] | None) -> Decimal:
    if row is None:
        return Decimal(0)
    rows, _, high, low, largest, decimals, d_high, d_low, digits, distinct, _ = row
    if metric.aggregation is Aggregation.COUNT:
        return Decimal(rows)
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(distinct)
    if metric.aggregation is Aggregation.MAX:
        return Decimal(int(largest))
    whole = int(high or 0) * HALF + int(low or 0)
    if not decimals:
        return Decimal(whole)
    places = int(digits)
    scaled = whole * 10 ** SCALE_DIGITS + int(d_high) * HALF + int(d_low)
    return Decimal(f"{scaled // 10 ** (SCALE_DIGITS - places)}E-{places}")


def _readable(metric: Metric, row: tuple[Any, ...]) -> bool:
    """Whether the database read every event of the group exactly (else: its events)."""
    rows, integers, decimals, keyed = row[0], row[1], row[5], row[10]
    if metric.aggregation is Aggregation.COUNT:
        return True
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return bool(keyed == rows)
    if metric.aggregation is Aggregation.MAX:
        return bool(integers == rows)
    return bool(integers + decimals == rows)  # a sum


@dataclass
class AggregatePlan:
    """Which accounts of a run are rated from aggregates over ``window`` (see the module)."""

    catalog: PlanCatalog
    metrics: dict[str, Metric]
    period: Period
    window: Period
    _decided: dict[tuple[Any, ...], frozenset[str] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: PlanCatalog, metrics: Sequence[Metric], period: Period,
           first_day: date) -> AggregatePlan | None:
        """``None`` when the run loads usage from before the previous month (yearly usage)."""
        year, month = divmod(period.start.year * 12 + period.start.month - 2, 12)
        window = Period(date(year, month + 1, 1), period.start)
        if first_day != window.start or window.end - window.start > LONGEST_WINDOW:
            return None
        return cls(catalog, {m.code: m for m in metrics}, period, window)

    def metrics_of(self, reference: str, phases: Sequence[Row]) -> frozenset[str] | None:
        """The metric codes to aggregate for an account with these phase rows, or ``None``:
        rate it from its events. Accounts with the same phases decide alike (cached)."""
        order: dict[Any, int] = {}
        key = tuple((order.setdefault(r["subscription_id"], len(order)), r["plan_code"],
                     r["start_on"], r["end_on"], r["started_on"], r["trial_ends_on"],
                     r["ends_on"]) for r in phases)
        if key not in self._decided:
            self._decided[key] = self._decide(reference, phases)
        return self._decided[key]

    def _decide(self, reference: str, phases: Sequence[Row]) -> frozenset[str] | None:
        codes: set[str] = set()
        try:
            for subscription in subscriptions_from_rows(reference, phases, self.catalog):
                for segment in usage_segments(subscription, self.catalog, self.period):
                    if (segment.window, segment.span) != (self.window, self.window):
                        return None
                    for charge in segment.plan.usage_charges:
                        metric = self.metrics.get(charge.metric_code or "")
                        if metric is None or needs_transactions(charge) or \
                                metric.aggregation not in AGGREGATED:
                            return None
                        codes.add(metric.code)
        except (ValueError, LookupError):
            return None  # the per-event path reports it
        return frozenset(codes)


def measure_chunk(conn: Connection, org_id: int, plan: AggregatePlan,
                  wanted: Mapping[int, frozenset[str]]) -> dict[int, MeasuredUsage]:
    """The aggregates of the ``wanted`` accounts (id -> metric codes), read in two grouped
    queries over their id range; an account with a group the database could not read exactly
    is left out (the caller rates it from its events)."""
    if not wanted:
        return {}
    start, end = midnight(plan.window.start), midnight(plan.window.end)
    # the codes first: a chunk has few distinct sets of codes, hashing metrics costs more
    used = {plan.metrics[code] for code in set().union(*set(wanted.values()))}
    weighted = {m.code: m for m in used if m.aggregation is Aggregation.TIME_WEIGHTED_SUM}
    plain = {m.code: m for m in used if m.code not in weighted}
    first, last = min(wanted), max(wanted)
    measured = {account: MeasuredUsage(start, end) for account in wanted}
    bad: set[int] = set()
    for account, code, *row in plain_aggregates(
            conn, org_id, start, end, first, last,
            {c: m.field if m.aggregation in (Aggregation.SUM, Aggregation.MAX) else None
             for c, m in plain.items()},
            {c: m.field or "" for c, m in plain.items()
             if m.aggregation is Aggregation.UNIQUE_COUNT}):
        if account in measured and code in wanted[account]:
            if not _readable(plain[code], tuple(row)):
                bad.add(account)
            measured[account].plain[code] = tuple(row)
    for account, code, key, rows, read, inside, first_at in weighted_pieces(
            conn, org_id, start, end, micros(end), first, last,
            {c: m.field for c, m in weighted.items()},
            {c: m.group_by for c, m in weighted.items()}):
        if account in measured and code in wanted[account]:
            if read != rows:
                bad.add(account)
            else:
                measured[account].weighted.setdefault(code, []).append(
                    (key, int(inside), int(first_at)))
    return {account: m for account, m in measured.items() if account not in bad}
