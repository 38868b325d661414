"""The rating cache per subscription shape gives the drafts rating gives without it."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealbill.domain.catalog import (
    Charge,
    ChargeModel,
    ChargeProperties,
    Interval,
    Plan,
    PlanCatalog,
    Tier,
)
from sealbill.domain.invoices import tax_breakdown, totals
from sealbill.domain.rating import AccountContext, DraftInvoice, RatingError, rate_account
from sealbill.domain.subscriptions import (
    Cancellation,
    CancellationMode,
    Period,
    Phase,
    Subscription,
)
from sealbill.domain.taxes import VatContext, VatRateClass
from sealbill.domain.usage import Aggregation, Metric, UsageEvent
from sealbill.domain.usage_windows import usage_segments
from sealbill.pipeline.billing.rate import _meter, merge, rate_one
from sealbill.pipeline.billing.rate_chunks import RatingContext
from sealbill.pipeline.billing.rating_cache import MAX_SHAPES, ShapeCache, prepare

APRIL = Period(date(2024, 4, 1), date(2024, 5, 1))
MARCH = datetime(2024, 3, 1, tzinfo=UTC)
METRICS = [Metric("calls", Aggregation.SUM), Metric("storage", Aggregation.TIME_WEIGHTED_SUM)]
API = Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls", ChargeProperties(
    tiers=(Tier(D(1000), D(0)), Tier(D(5000), D("0.002"), D(1)), Tier(None, D("0.0015")))),
    metric_code="calls")
STORAGE = Charge("storage", ChargeModel.PER_UNIT, "Stockage", "Storage",
                 ChargeProperties(unit_price=D("0.10")), metric_code="storage")


def _flat(code: str, amount: str, rate_class: VatRateClass = VatRateClass.STANDARD) -> Charge:
    return Charge(code, ChargeModel.FLAT, f"Forfait {code}", f"{code} fee",
                  ChargeProperties(amount=D(amount)), vat_rate_class=rate_class)


CATALOG = PlanCatalog([
    Plan("pro", "Pro", Interval.MONTH, "EUR", 1, date(2023, 1, 1),
         (_flat("base", "49.00"), _flat("support", "10.00", VatRateClass.REDUCED), API,
          STORAGE)),
    Plan("pro", "Pro", Interval.MONTH, "EUR", 2, date(2024, 3, 10),
         (_flat("base", "59.00"), API, STORAGE)),
    Plan("basic", "Basic", Interval.MONTH, "EUR", 1, date(2023, 1, 1),
         (_flat("base", "9.99"), STORAGE)),
    Plan("annual", "Annual", Interval.YEAR, "EUR", 1, date(2023, 1, 1),
         (_flat("base", "499.00"), API)),
    Plan("dollar", "Dollar", Interval.MONTH, "USD", 1, date(2023, 1, 1), (_flat("base", "5"),)),
])
MONTHLY = ("pro", "basic", "pro", "basic", "dollar")

days = st.integers(0, 220).map(lambda n: date(2023, 10, 1) + timedelta(days=n))


@st.composite
def subscriptions(draw: st.DrawFn) -> Subscription:
    yearly = draw(st.integers(0, 3)) == 0
    codes = ("annual",) if yearly else MONTHLY
    start = draw(days)
    phases = [Phase(draw(st.sampled_from(codes)), start, None)]
    if draw(st.booleans()):
        change = start + timedelta(days=draw(st.integers(1, 120)))
        phases = [Phase(phases[0].plan_code, start, change),
                  Phase(draw(st.sampled_from(codes)), change, None)]
    trial = draw(st.none() | st.integers(1, 60).map(lambda n: start + timedelta(days=n)))
    ends = draw(st.none() | st.integers(1, 400).map(lambda n: start + timedelta(days=n)))
    anchor = draw(st.sampled_from([date(start.year, start.month, 1), start]))
    return Subscription("ignored", "ignored", Interval.YEAR if yearly else Interval.MONTH,
                        anchor, tuple(phases), trial,
                        Cancellation(ends, CancellationMode.IMMEDIATE) if ends else None)


accounts = st.builds(lambda country, business, valid, locale, currency: AccountContext(
    "ignored", currency, locale, VatContext(country, business, valid)),
    st.sampled_from(["FR", "DE", "US", "BE", "GP"]), st.booleans(), st.booleans(),
    st.sampled_from(["fr", "en"]), st.sampled_from(["EUR"] * 5 + ["USD"]))


@st.composite
def usage(draw: st.DrawFn, reference: str) -> list[UsageEvent]:
    moments = draw(st.lists(st.integers(0, 31 * 86400 - 1), max_size=6))
    return sorted((UsageEvent(f"e{n}", reference, draw(st.sampled_from(["calls", "storage"])),
                              MARCH + timedelta(seconds=s), D(draw(st.integers(0, 9000))))
                   for n, s in enumerate(moments)), key=lambda e: e.timestamp)


def _uncached(account: AccountContext, subs: Sequence[Subscription],
              events: Sequence[UsageEvent]) -> list[DraftInvoice]:
    """Rating as it went before the cache: every subscription derived anew, the domain
    computing the fixed fees itself."""
    by_code = {m.code: m for m in METRICS}
    drafts = []
    for subscription in subs:
        own = subscription.period_containing(APRIL.start)
        fees_due = own.start == APRIL.start
        segments = usage_segments(subscription, CATALOG, APRIL)
        if not fees_due and not segments:
            continue
        rated = [(s, _meter(account, s, by_code, events, ())) for s in segments]
        drafts.append(rate_account(account, subscription, CATALOG,
                                   own if fees_due else APRIL, rated, fees=fees_due))
    return drafts


def _outcome(rate: Callable[..., list[DraftInvoice]], *args: Any, **kwargs: Any) -> object:
    """The drafts, or the error's type and message."""
    try:
        return rate(*args, **kwargs)
    except (RatingError, ValueError, LookupError) as exc:
        return type(exc), str(exc)


@st.composite
def shape_pools(draw: st.DrawFn) -> list[Subscription]:
    """A few shapes, some differing from the first in one field only: a cache key that left
    out a field would give one of them the other's drafts."""
    first = draw(subscriptions())
    pool = [first]
    near = st.integers(0, 60).map(lambda n: date(2024, 3, 1) + timedelta(days=n))
    for _ in range(draw(st.integers(0, 4))):
        other = draw(subscriptions())
        name = draw(st.sampled_from(["billing_anchor", "phases", "trial_end", "cancellation"]))
        value = getattr(other, name)
        if name == "trial_end":  # a day of the periods this invoice bills
            value = draw(near)
        elif name == "cancellation":
            value = Cancellation(draw(near), CancellationMode.IMMEDIATE)
        pool.append(replace(first, **{name: value}))
    return pool


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape_pools(), st.data())
def test_rating_with_the_shape_cache_gives_the_drafts_and_errors_of_rating_without_it(
        shapes_pool: list[Subscription], data: st.DataObject) -> None:
    # Accounts drawing their subscriptions from a small pool of shapes: the cache is hit.
    cache = ShapeCache(CATALOG, APRIL)
    for n in range(data.draw(st.integers(2, 6))):
        reference = f"C-{n}"
        base = data.draw(accounts)
        account = AccountContext(reference, base.currency, base.locale, base.vat)
        picked = data.draw(st.lists(st.sampled_from(shapes_pool), min_size=1, max_size=2,
                                    unique_by=id))
        subs = [Subscription(f"S-{n}-{i}", reference, s.interval, s.billing_anchor, s.phases,
                             s.trial_end, s.cancellation) for i, s in enumerate(picked)]
        events = data.draw(usage(reference))
        cached = _outcome(rate_one, account, subs, CATALOG, METRICS, events, APRIL,
                          shapes=cache)
        assert cached == _outcome(_uncached, account, subs, events)
        assert cached == _outcome(rate_one, account, subs, CATALOG, METRICS, events, APRIL)


def test_a_cached_shape_is_what_prepare_gives_for_another_subscription_of_that_shape() -> None:
    cache = ShapeCache(CATALOG, APRIL)
    first = Subscription("S-1", "C-1", Interval.MONTH, date(2024, 3, 1),
                         (Phase("pro", date(2024, 3, 1), date(2024, 3, 20)),
                          Phase("basic", date(2024, 3, 20))))
    other = Subscription("S-2", "C-2", first.interval, first.billing_anchor, first.phases)
    assert cache.prepared(first) is cache.prepared(other)
    found = cache.prepared(other)
    assert found == prepare(other, CATALOG, APRIL)
    assert found.fee_lines  # the advance fee and the proration lines of March
    assert any(line.quantity < 0 for line in found.fee_lines)


def test_a_shape_that_does_not_validate_leaves_its_fee_lines_to_the_domain() -> None:
    wrong = Subscription("S-1", "C-1", Interval.MONTH, date(2024, 4, 1),
                         (Phase("annual", date(2024, 4, 1)),))  # a yearly plan, monthly billed
    assert prepare(wrong, CATALOG, APRIL).fee_lines is None
    account = AccountContext("C-1", "EUR", "fr", VatContext("FR", True, True))
    outcome = _outcome(rate_one, account, [wrong], CATALOG, METRICS, [], APRIL,
                       shapes=ShapeCache(CATALOG, APRIL))
    assert outcome == _outcome(_uncached, account, [wrong], [])
    assert isinstance(outcome, tuple) and "billed per year" in outcome[1]


def test_the_cache_starts_over_past_its_bound() -> None:
    cache = ShapeCache(CATALOG, APRIL)
    for n in range(MAX_SHAPES + 1):
        cache.prepared(Subscription("S", "C", Interval.MONTH, date(2024, 3, 1),
                                    (Phase("pro", date(2024, 3, 1) - timedelta(days=n)),)))
    assert len(cache._found) == 1


def test_one_draft_merges_into_its_own_lines_and_vat() -> None:
    account = AccountContext("C-1", "EUR", "en", VatContext("DE", False, False))
    sub = Subscription("S-1", "C-1", Interval.MONTH, date(2024, 3, 1),
                       (Phase("pro", date(2024, 3, 1), date(2024, 3, 12)),
                        Phase("basic", date(2024, 3, 12))))
    events = [UsageEvent("e1", "C-1", "storage", MARCH, D(7))]
    [draft] = rate_one(account, [sub], CATALOG, METRICS, events, APRIL)
    merged = merge(7, "7:2024-04", APRIL, [draft], {"scheme": "x"})
    reasons = {t.category: t.exemption_reason for t in draft.tax_subtotals
               if t.exemption_reason}
    subtotals = tax_breakdown(list(draft.lines), "EUR", reasons)
    assert list(merged.lines) == list(draft.lines)
    assert [line.position for line in merged.lines] == list(range(1, len(draft.lines) + 1))
    assert tuple(merged.tax_subtotals) == tuple(subtotals)
    assert (merged.total_excl_minor, merged.tax_total_minor, merged.total_incl_minor) == \
        totals(subtotals)
    assert merged.tax_facts == {"scheme": "x"}


def test_the_rating_context_reaches_a_worker_with_a_cache_of_its_own() -> None:
    ctx = RatingContext({}, CATALOG, METRICS, APRIL.start, APRIL.end, "2024-04")
    copy = pickle.loads(pickle.dumps(ctx))
    assert isinstance(copy.shapes, ShapeCache) and copy.shapes.period == APRIL
    assert copy.catalog.price_for("pro", date(2024, 4, 1)).usage_charges == (API, STORAGE)
