"""What rating derives from a subscription's shape alone, computed once per shape in a run.

Most accounts of a run have a subscription of the same shape: the same plan phases, billing
anchor, trial and cancellation. For one billing period, everything rating derives from the
subscription without the account's usage — the subscription's own period, whether its fixed
fees are due, its usage segments (:func:`~sealbill.domain.usage_windows.usage_segments`) and
its fixed-fee lines (:func:`~sealbill.domain.subscriptions.fixed_fee_lines`) — depends on that
shape only, never on the subscription's id or its account: :class:`ShapeCache` keeps it per
shape, so an account costs its metering and its usage lines.

Invariants: a cached :class:`Prepared` equals :func:`prepare` of the subscription (the cache is
pure; ``tests/unit/pipeline/test_rating_cache.py`` checks rating with and without it gives
the same drafts, Hypothesis); a subscription whose shape does not validate gets no fee lines
here, so the domain computes and reports them as without the cache; an error raised while
preparing is not cached (the next account of that shape raises it again). The cache is
bounded: it starts over past ``MAX_SHAPES`` shapes, so memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.subscriptions import (
    FixedFeeLine,
    Period,
    Subscription,
    fixed_fee_lines,
    validate_subscription,
)
from sealbill.domain.usage_windows import UsageSegment, usage_segments

MAX_SHAPES = 10_000


@dataclass(frozen=True)
class Prepared:
    """A subscription's part of the invoice opening ``period``, without its usage."""

    own: Period  # the subscription's period containing the billing period's first day
    fees_due: bool  # its own period opens with the billing period
    segments: tuple[UsageSegment, ...]
    #: the fixed-fee lines when ``fees_due`` and the shape validates; ``None``: the domain
    #: computes them (and names what is wrong)
    fee_lines: tuple[FixedFeeLine, ...] | None


def prepare(subscription: Subscription, catalog: PlanCatalog, period: Period) -> Prepared:
    """:class:`Prepared` of ``subscription`` for the invoice opening ``period``."""
    own = subscription.period_containing(period.start)
    fees_due = own.start == period.start
    segments = tuple(usage_segments(subscription, catalog, period))
    fee_lines = None
    if fees_due and not validate_subscription(subscription, catalog):
        fee_lines = tuple(fixed_fee_lines(subscription, catalog, own))
    return Prepared(own, fees_due, segments, fee_lines)


def shape_of(subscription: Subscription) -> tuple[Any, ...]:
    """Everything of ``subscription`` that :func:`prepare` reads (not its id, not its account)."""
    return (subscription.interval, subscription.billing_anchor, subscription.phases,
            subscription.trial_end, subscription.cancellation)


@dataclass
class ShapeCache:
    """:func:`prepare` per subscription shape, for one catalog and one billing period."""

    catalog: PlanCatalog
    period: Period
    _found: dict[tuple[Any, ...], Prepared] = field(default_factory=dict, repr=False)

    def prepared(self, subscription: Subscription) -> Prepared:
        key = shape_of(subscription)
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= MAX_SHAPES:
                self._found.clear()
            found = self._found[key] = prepare(subscription, self.catalog, self.period)
        return found
