"""Metering: one account's events of a usage scope become the quantities rating prices.

Invariants: a meter refuses events of another account or outside its scope; a percentage
charge with a fixed fee, a minimum or a maximum per transaction is priced per transaction
(:class:`TransactionFeeAccumulator`), every other usage charge from its metric's aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

from sealbill.domain.catalog import Charge, ChargeModel, PriceComponent
from sealbill.domain.subscriptions import UsageScope
from sealbill.domain.usage import (
    Aggregator,
    Levels,
    Metric,
    UsageEvent,
    make_aggregator,
    metric_value,
)

ZERO = Decimal(0)
_EXACT = Context(prec=80, traps=[InvalidOperation, Inexact])


class RatingError(ValueError):
    """Rating refused; the message lists every problem at once."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class TransactionTotals:
    """Streamed transactions of one percentage charge: count, sum of amounts, sum of fees."""

    transactions: int = 0
    base: Decimal = ZERO
    fees: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Aggregates per metric code, and per charge code for percentage charges."""

    quantities: Mapping[str, Decimal] = field(default_factory=dict)
    transactions: Mapping[str, TransactionTotals] = field(default_factory=dict)


def needs_transactions(charge: Charge) -> bool:
    """True for a percentage charge with a fixed fee, a minimum or a maximum per transaction."""
    p = charge.properties
    return charge.model is ChargeModel.PERCENTAGE and (
        p.fixed_fee != 0 or (p.min_per_transaction, p.max_per_transaction) != (None, None))


def transaction_fee(charge: Charge, amount: Decimal) -> Decimal:
    """Fee of one transaction: rate part + fixed fee, then clamped to [min, max] when set.

    >>> from sealbill.domain.catalog import ChargeProperties
    >>> card = Charge("card", ChargeModel.PERCENTAGE, "Paiements", "Payments",
    ...     ChargeProperties(rate=Decimal("1.4"), fixed_fee=Decimal("0.25"),
    ...                      min_per_transaction=Decimal("0.50")), metric_code="payments")
    >>> transaction_fee(card, Decimal("10")), transaction_fee(card, Decimal("100"))
    (Decimal('0.50'), Decimal('1.650'))
    """
    p = charge.properties
    with localcontext(_EXACT):
        fee = amount * p.rate.scaleb(-2) + p.fixed_fee
        if p.min_per_transaction is not None:
            fee = max(fee, p.min_per_transaction)
        if p.max_per_transaction is not None:
            fee = min(fee, p.max_per_transaction)
        return fee


def transaction_components(charge: Charge, found: TransactionTotals) -> tuple[PriceComponent, ...]:
    """Invoice parts of a percentage charge: rate part and fixed fees apart, or, with a min or
    max, the clamped fees as one total."""
    p = charge.properties
    if found.transactions == 0:
        return ()
    if (p.min_per_transaction, p.max_per_transaction) != (None, None):
        return (PriceComponent("transaction_fees", 1, found.fees),)
    parts = [PriceComponent("percentage", found.base, p.rate.scaleb(-2))]
    if p.fixed_fee:
        parts.append(PriceComponent("transaction_fee", found.transactions, p.fixed_fee))
    return tuple(parts)


class TransactionFeeAccumulator:
    """Streams the transaction amounts of one percentage charge in O(1) memory."""

    def __init__(self, charge: Charge) -> None:
        self.charge = charge
        self._count, self._base, self._fees = 0, ZERO, ZERO

    def add(self, amount: Decimal) -> None:
        with localcontext(_EXACT):
            self._count += 1
            self._base += amount
            self._fees += transaction_fee(self.charge, amount)

    def result(self) -> TransactionTotals:
        return TransactionTotals(self._count, self._base, self._fees)


class UsageMeter:
    """Streams one account's events of a :class:`UsageScope` into :class:`UsageTotals`.

    Events of metrics the plan does not bill are counted in ``ignored``; events of another
    account or outside the scope raise. ``initial_values`` seeds time-weighted sums (the level,
    or the levels per group key, at the scope's start).

    >>> from sealbill.domain.catalog import ChargeProperties, Interval, Plan
    >>> from sealbill.domain.usage import Aggregation
    >>> from datetime import date, datetime
    >>> api = Charge("api", ChargeModel.PER_UNIT, "API", "API",
    ...              ChargeProperties(unit_price=Decimal("0.001")), metric_code="calls")
    >>> plan = Plan("pro", "Pro", Interval.MONTH, "EUR", 1, date(2024, 1, 1), (api,))
    >>> start, end = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)
    >>> scope = UsageScope(plan, start, end, end - start)
    >>> meter = UsageMeter("C-1", scope, [Metric("calls", Aggregation.COUNT)])
    >>> for i in range(3): meter.add(UsageEvent(str(i), "C-1", "calls", start))
    >>> meter.result().quantities
    {'calls': Decimal('3')}
    """

    def __init__(self, account_reference: str, scope: UsageScope, metrics: Iterable[Metric],
                 initial_values: Mapping[str, Decimal | Levels] | None = None) -> None:
        by_code = {metric.code: metric for metric in metrics}
        plan, start, end = scope.plan, scope.start, scope.end
        if start.utcoffset() is None or end.utcoffset() is None:
            raise RatingError(["meter window: naive datetimes refused"])
        charges = plan.usage_charges
        missing = sorted({c.metric_code or "" for c in charges} - by_code.keys())
        if missing:
            raise RatingError(f"plan {plan.code}: metric {code!r} is not defined"
                              for code in missing)
        seeds = initial_values or {}
        self.account_reference, self.ignored = account_reference, 0
        self._aggregators: dict[str, Aggregator] = {
            code: make_aggregator(by_code[code], start, end, seeds.get(code, ZERO),
                                  scope.period_length)
            for code in sorted({c.metric_code or "" for c in charges if not needs_transactions(c)})
        }
        self._transactions = [(by_code[c.metric_code or ""], TransactionFeeAccumulator(c))
                              for c in charges if needs_transactions(c)]
        self._start, self._end = start.astimezone(UTC), end.astimezone(UTC)

    def add(self, event: UsageEvent) -> None:
        if event.account_reference != self.account_reference:
            raise RatingError([f"event {event.event_id}: account {event.account_reference!r} "
                               f"fed to the meter of {self.account_reference!r}"])
        if not self._start <= event.timestamp.astimezone(UTC) < self._end:
            raise RatingError([f"event {event.event_id}: outside the meter window"])
        used = False
        if (aggregator := self._aggregators.get(event.metric_code)) is not None:
            aggregator.add(event)
            used = True
        for metric, accumulator in self._transactions:
            if metric.code == event.metric_code:
                accumulator.add(metric_value(metric, event))
                used = True
        self.ignored += 0 if used else 1

    def result(self) -> UsageTotals:
        return UsageTotals(
            {code: aggregator.result() for code, aggregator in self._aggregators.items()},
            {acc.charge.code: acc.result() for _, acc in self._transactions},
        )



def measured_totals(scope: UsageScope, metrics: Iterable[Metric],
                    quantities: Mapping[str, Decimal]) -> UsageTotals:
    """What a :class:`UsageMeter` of ``scope`` returns, from quantities aggregated elsewhere
    (by the database) over that scope: the same checks, one quantity per metric of a charge
    (a charge priced per transaction needs its events)."""
    charges = scope.plan.usage_charges
    needed = sorted({c.metric_code or "" for c in charges})
    defined = {metric.code for metric in metrics}
    problems = [f"plan {scope.plan.code}: metric {code!r} is not defined"
                for code in needed if code not in defined]
    if problems:
        raise RatingError(problems)
    problems = [f"charge {c.code}: priced per transaction, needs its events"
                for c in charges if needs_transactions(c)]
    problems += [f"metric {code}: no measured quantity" for code in needed
                 if code not in quantities]
    if problems:
        raise RatingError(problems)
    return UsageTotals({code: quantities[code] for code in needed})
