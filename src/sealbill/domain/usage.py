"""Usage events and their streaming aggregation into billable quantities.

A :class:`UsageEvent`: an account used a metric at a tz-aware instant (naive refused), with an
optional ``Decimal`` value and string properties. A :class:`Metric` turns events into one quantity
per window through a *streaming* aggregator (``add(event)``, ``result()``): O(1) memory, except
``unique_count`` which holds its distinct values.

Invariants: quantities are ``Decimal``, exact except ``time_weighted_sum`` (a division);
``sum``, ``count``, ``max``, ``unique_count`` and ``latest`` do not depend on event order; an
aggregator refuses events of another metric or outside ``[start, end)``; :func:`payload_digest`
ignores ``event_id``, property order, the UTC offset of an instant and trailing zeros.

Time-weighted sum: an event's value is held until the next event of its group (the value of
the property ``group_by``, one level per storage bucket or seat pool; a single group without
it); the level of the metric is the sum of its groups' levels. Before a group's first event in
the window its level is the one carried over: the value of its last event before the window
(:func:`carried_levels`), which must count — 500 GB set in August and kept all of October is
500 GB-months in October. The result is the integral of that step function
divided by the window length — a *per-period fraction*, the average level
``Σ value_i × (length_i / window length)``: 10 seats for 10 days then 20 for 20 days of a 30-day
month gives 16.67 seat-months; multiply by the window's days for unit×days.

>>> from datetime import datetime, timezone
>>> t = lambda day: datetime(2024, 4, day, tzinfo=timezone.utc)
>>> seats = Metric("seats", Aggregation.TIME_WEIGHTED_SUM)
>>> events = [UsageEvent(f"e{d}", "acct", "seats", t(d), Decimal(v))
...           for d, v in ((1, 10), (11, 20))]
>>> aggregate(seats, events, t(1), datetime(2024, 5, 1, tzinfo=timezone.utc))
Decimal('16.66666666666666666666666667')
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from enum import StrEnum

from sealbill.domain.money import MoneyError, parse_decimal

ZERO = Decimal(0)
_EXACT = Context(prec=80, traps=[InvalidOperation, Inexact])


class UsageError(ValueError):
    """An event or aggregation that sealbill refuses."""


class UsageRowError(UsageError):
    """An import row with problems: ``line_no`` and every faulty ``(field, message)``."""

    def __init__(self, line_no: int, problems: Iterable[tuple[str, str]]) -> None:
        self.line_no = line_no
        self.problems = tuple(problems)
        super().__init__(f"line {line_no}: " + "; ".join(f"{f}: {m}" for f, m in self.problems))


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(f"{what}: naive datetime {moment.isoformat()} refused; give an offset")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    event_id: str
    account_reference: str
    metric_code: str
    timestamp: datetime
    value: Decimal | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _utc(self.timestamp, f"event {self.event_id}: timestamp")
        if self.value is not None and not (
            isinstance(self.value, Decimal) and self.value.is_finite()
        ):
            raise UsageError(f"event {self.event_id}: value must be a finite Decimal or None")
        props = dict(self.properties)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
            raise UsageError(f"event {self.event_id}: properties must map str to str")
        object.__setattr__(self, "properties", props)


def canonical_decimal(value: Decimal) -> str:
    """Fixed-point text without trailing zeros, exact at any precision.

    >>> [canonical_decimal(Decimal(t)) for t in ("1.500", "1E+2", "-0.00")]
    ['1.5', '100', '0']
    """
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def payload_digest(event: UsageEvent) -> str:
    """SHA-256 (hex) of the canonical JSON of everything but ``event_id``: two events with the
    same id and different digests are a conflict, not a duplicate.

    >>> from datetime import datetime, timedelta, timezone
    >>> paris = timezone(timedelta(hours=2))
    >>> a = UsageEvent("1", "acct", "api", datetime(2024, 4, 1, 12, tzinfo=paris),
    ...                Decimal("1.0"), {"b": "2", "a": "1"})
    >>> b = UsageEvent("2", "acct", "api", datetime(2024, 4, 1, 10, tzinfo=timezone.utc),
    ...                Decimal("1"), {"a": "1", "b": "2"})
    >>> payload_digest(a) == payload_digest(b)
    True
    """
    payload = {"schema": "sealbill.usage.v1", "account_reference": event.account_reference,
               "metric_code": event.metric_code, "properties": event.properties,
               "timestamp": _utc(event.timestamp, "timestamp").isoformat(timespec="microseconds"),
               "value": None if event.value is None else canonical_decimal(event.value)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"
    TIME_WEIGHTED_SUM = "time_weighted_sum"


@dataclass(frozen=True, slots=True)
class Metric:
    """``field``: the property to read (``None``: ``event.value``); ``unique_count`` counts the
    distinct values of its ``field``, ``count`` ignores it; ``group_by``: the property whose
    value keys a separate level (time-weighted sums only)."""

    code: str
    aggregation: Aggregation
    field: str | None = None
    group_by: str | None = None

    def group_of(self, event: UsageEvent) -> str:
        """The group key of ``event`` (``""`` without ``group_by`` or without the property)."""
        return event.properties.get(self.group_by, "") if self.group_by else ""


#: Level per group key of a time-weighted metric.
Levels = Mapping[str, Decimal]


def validate_metric(metric: Metric) -> list[str]:
    """Every problem of ``metric``.

    >>> validate_metric(Metric("", Aggregation.UNIQUE_COUNT))
    ['metric : code: empty', 'metric : field: unique_count needs the property to count']
    """
    checks = [
        (bool(metric.code), "code: empty"),
        (isinstance(metric.aggregation, Aggregation), f"aggregation: {metric.aggregation!r}"),
        (metric.aggregation != Aggregation.UNIQUE_COUNT or bool(metric.field),
         "field: unique_count needs the property to count"),
        (metric.group_by is None or metric.aggregation is Aggregation.TIME_WEIGHTED_SUM,
         "group_by: only a time_weighted_sum keeps a level per group"),
    ]
    return [f"metric {metric.code}: {message}" for ok, message in checks if not ok]


def metric_value(metric: Metric, event: UsageEvent) -> Decimal:
    """The number ``metric`` reads from ``event`` (its ``value`` or a numeric property)."""
    if metric.field is None:
        if event.value is None:
            raise UsageError(f"event {event.event_id}: value: required by metric {metric.code}")
        return event.value
    try:
        return parse_decimal(event.properties[metric.field], field=metric.field)
    except KeyError:
        raise UsageError(f"event {event.event_id}: properties.{metric.field}: "
                         f"required by metric {metric.code}") from None
    except MoneyError as error:
        raise UsageError(f"event {event.event_id}: properties.{error}") from None


class Aggregator(ABC):
    """Streams the events of one metric in the window ``[start, end)``; 0 when fed nothing."""

    def __init__(self, metric: Metric, start: datetime, end: datetime) -> None:
        self.metric = metric
        self.start = _utc(start, "window start")
        self.end = _utc(end, "window end")
        if self.start >= self.end:
            raise UsageError(f"metric {metric.code}: empty window {start} .. {end}")
        self._reset()

    def add(self, event: UsageEvent) -> None:
        if event.metric_code != self.metric.code:
            raise UsageError(f"event {event.event_id}: metric {event.metric_code!r} fed to "
                             f"aggregator of {self.metric.code!r}")
        if not self.start <= _utc(event.timestamp, "timestamp") < self.end:
            raise UsageError(f"event {event.event_id}: {event.timestamp.isoformat()} is outside "
                             f"[{self.start.isoformat()}, {self.end.isoformat()})")
        with localcontext(_EXACT):
            self._add(event)

    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def _add(self, event: UsageEvent) -> None: ...

    @abstractmethod
    def result(self) -> Decimal: ...


class SumAggregator(Aggregator):
    def _reset(self) -> None:
        self._total = ZERO

    def _add(self, event: UsageEvent) -> None:
        self._total += metric_value(self.metric, event)

    def result(self) -> Decimal:
        return self._total


class CountAggregator(SumAggregator):
    def _add(self, event: UsageEvent) -> None:
        self._total += 1


class MaxAggregator(Aggregator):
    def _reset(self) -> None:
        self._max: Decimal | None = None

    def _add(self, event: UsageEvent) -> None:
        value = metric_value(self.metric, event)
        self._max = value if self._max is None else max(self._max, value)

    def result(self) -> Decimal:
        return ZERO if self._max is None else self._max


class UniqueCountAggregator(Aggregator):
    """Distinct values of the property ``metric.field`` (holds them); events without it refused."""

    def _reset(self) -> None:
        self._seen: set[str] = set()

    def _add(self, event: UsageEvent) -> None:
        key = self.metric.field or ""
        if key not in event.properties:
            raise UsageError(f"event {event.event_id}: properties.{key}: "
                             f"required by metric {self.metric.code}")
        self._seen.add(event.properties[key])

    def result(self) -> Decimal:
        return Decimal(len(self._seen))


class LatestAggregator(Aggregator):
    """Value of the latest event; timestamp ties go to the greatest ``event_id``."""

    def _reset(self) -> None:
        self._key: tuple[datetime, str] | None = None
        self._latest = ZERO

    def _add(self, event: UsageEvent) -> None:
        key = (_utc(event.timestamp, "timestamp"), event.event_id)
        if self._key is None or key > self._key:
            self._key, self._latest = key, metric_value(self.metric, event)

    def result(self) -> Decimal:
        return self._latest


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _as_levels(initial: Decimal | Levels) -> dict[str, Decimal]:
    return {"": initial} if isinstance(initial, Decimal) else dict(initial)


class TimeWeightedSumAggregator(Aggregator):
    """Average level (module docstring); events fed in timestamp order, the last fed wins a tie.
    ``initial_value``: level at ``start`` (a ``Decimal``, or the levels per group key);
    :attr:`levels`: the levels to carry into the next window (:attr:`current_value`: their
    sum); ``period_length`` (default: the window's) divides the integral, for a window covering
    part of the billed period only (trial ending mid-period, a plan change)."""

    def __init__(self, metric: Metric, start: datetime, end: datetime,
                 initial_value: Decimal | Levels = ZERO,
                 period_length: timedelta | None = None) -> None:
        self.levels = _as_levels(initial_value)
        super().__init__(metric, start, end)
        self._length = _micros(period_length or (self.end - self.start))
        if self._length < _micros(self.end - self.start):
            raise UsageError(f"metric {metric.code}: period_length is shorter than the window")

    @property
    def current_value(self) -> Decimal:
        with localcontext(_EXACT):
            return sum(self.levels.values(), ZERO)

    def _reset(self) -> None:
        self._since = self.start
        self._weighted = ZERO  # Σ level × microseconds, exact

    def _add(self, event: UsageEvent) -> None:
        at = _utc(event.timestamp, "timestamp")
        if at < self._since:
            raise UsageError(f"event {event.event_id}: time_weighted_sum needs events in "
                             f"timestamp order ({at.isoformat()} < {self._since.isoformat()})")
        self._weighted += self.current_value * _micros(at - self._since)
        self.levels[self.metric.group_of(event)] = metric_value(self.metric, event)
        self._since = at

    def result(self) -> Decimal:
        """Rounded to 28 significant digits: the one inexact aggregation (a division)."""
        with localcontext(_EXACT):
            weighted = self._weighted + self.current_value * _micros(self.end - self._since)
        return time_weighted_average(weighted, self._length)


def time_weighted_average(weighted: Decimal, length_micros: int) -> Decimal:
    """``weighted`` (Σ level × microseconds, exact) over the period's length in microseconds,
    rounded to 28 significant digits."""
    with localcontext(_EXACT) as exact:
        exact.traps[Inexact] = False
        exact.prec = 28
        return weighted / length_micros


def time_weighted_integral(levels: Levels, pieces: Iterable[tuple[str, int, int]],
                           start_micros: int, end_micros: int) -> Decimal:
    """Σ level × µs over ``[start, end)`` from what a database computed per group key:
    ``pieces`` = ``(key, Σ value_i × (t_{i+1} − t_i) with t_{n+1} = end, t_1)``; ``levels``:
    carried in at ``start``. What :class:`TimeWeightedSumAggregator` sums for the same events,
    to the exponent: the level is the sum of the groups' levels, each holding its carried level
    (none: 0) until its first event, or throughout without events."""
    with localcontext(_EXACT):
        weighted = ZERO
        seen = set()
        for key, inside, first in pieces:
            seen.add(key)
            weighted += Decimal(inside) + levels.get(key, ZERO) * (first - start_micros)
        for key, level in levels.items():
            if key not in seen:
                weighted += level * (end_micros - start_micros)
        return weighted


def carried_levels(metric: Metric, events: Iterable[UsageEvent],
                   initial: Levels | None = None) -> dict[str, Decimal]:
    """The level of each group after ``events`` (any order: the latest event of each group
    wins, ties to the greatest ``event_id``), starting from ``initial``.

    >>> from datetime import datetime, timezone
    >>> gb = Metric("gb", Aggregation.TIME_WEIGHTED_SUM, group_by="bucket")
    >>> at = lambda d: datetime(2024, 8, d, tzinfo=timezone.utc)
    >>> carried_levels(gb, [UsageEvent("2", "a", "gb", at(9), Decimal(7), {"bucket": "x"}),
    ...                     UsageEvent("1", "a", "gb", at(2), Decimal(5), {"bucket": "x"}),
    ...                     UsageEvent("3", "a", "gb", at(3), Decimal(1), {"bucket": "y"})])
    {'x': Decimal('7'), 'y': Decimal('1')}
    """
    levels = dict(initial or {})
    latest: dict[str, tuple[datetime, str]] = {}
    for event in events:
        key, seen = metric.group_of(event), (_utc(event.timestamp, "timestamp"), event.event_id)
        if key not in latest or seen > latest[key]:
            latest[key] = seen
            levels[key] = metric_value(metric, event)
    return levels


_AGGREGATORS: dict[Aggregation, type[Aggregator]] = {
    Aggregation.SUM: SumAggregator, Aggregation.COUNT: CountAggregator,
    Aggregation.MAX: MaxAggregator, Aggregation.UNIQUE_COUNT: UniqueCountAggregator,
    Aggregation.LATEST: LatestAggregator,
}


def make_aggregator(metric: Metric, start: datetime, end: datetime,
                    initial_value: Decimal | Levels = ZERO,
                    period_length: timedelta | None = None) -> Aggregator:
    """A fresh aggregator for ``metric`` over ``[start, end)`` (last two: TWS only)."""
    if problems := validate_metric(metric):
        raise UsageError("; ".join(problems))
    if metric.aggregation is Aggregation.TIME_WEIGHTED_SUM:
        return TimeWeightedSumAggregator(metric, start, end, initial_value, period_length)
    return _AGGREGATORS[metric.aggregation](metric, start, end)


def aggregate(metric: Metric, events: Iterable[UsageEvent], start: datetime, end: datetime,
              initial_value: Decimal | Levels = ZERO) -> Decimal:
    """Feed ``events`` to a fresh aggregator and return its result."""
    aggregator = make_aggregator(metric, start, end, initial_value)
    for event in events:
        aggregator.add(event)
    return aggregator.result()
