"""Hypothesis strategies of the oracle's cases: a currency, one to three plans (monthly or
yearly, fixed fees, usage charges of every model the rater supports, on eight metrics, some
billed yearly), one to five accounts of every kind of buyer, each with a subscription that may
start mid-month, change plan (upgrade or downgrade), be cancelled (immediately or at period
end) or start with a trial, usage streams (levels carried from long before, group keys, late
events), manual credits, and an organization that may have opted in to OSS.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from hypothesis import strategies as st

from tests.oracle.reference import RefAccount, RefCharge, RefEvent, RefPlan, RefTier
from tests.oracle.reference_run import RefCase
from tests.oracle.reference_tax import CURRENCIES, OSS_RATES

#: Prices are drawn in euros and scaled so that amounts stay comparable (exact decimals).
SCALE = {"EUR": Fraction(1), "USD": Fraction(1), "JPY": Fraction(150), "KWD": Fraction(3, 10)}
USAGE_METRICS = ("calls", "hits", "peak", "users", "last", "gb", "seats")
COUNTRY = {"fr_business": "FR", "fr_consumer": "FR", "eu_business": "DE",
           "eu_no_vat_id": "IT", "non_eu_business": "US", "non_eu_consumer": "CH"}
RECENT = (datetime(2026, 9, 1, tzinfo=UTC), 61 * 86400)  # September and October 2026
LONG = (datetime(2025, 10, 1, tzinfo=UTC), 396 * 86400)  # 2025-10-01 .. 2026-11-01


def _whole(value: Fraction, currency: str) -> Fraction:
    """``value`` cut to an invoice amount of ``currency`` (a flat fee must be one)."""
    step = Fraction(1, 10 ** CURRENCIES[currency][1])
    return max(step, (value // step) * step)


def _price(draw: st.DrawFn, currency: str, top: int = 20_000) -> Fraction:
    return Fraction(draw(st.integers(0, top)), 10_000) * SCALE[currency]


def _fee(draw: st.DrawFn, currency: str) -> Fraction:
    cents = draw(st.one_of(st.integers(100, 50_000), st.integers(200_000, 900_000)))
    return _whole(Fraction(cents, 100) * SCALE[currency], currency)


@st.composite
def usage_charge(draw: st.DrawFn, metric: str, currency: str, yearly: bool,
                 vat_class: str) -> RefCharge:
    model = draw(st.sampled_from(["unit", "graduated", "volume", "package"]))
    cadence = yearly and draw(st.integers(0, 2)) == 0
    common = {"metric": metric, "vat_class": vat_class, "yearly_usage": cadence}
    if model == "unit":
        return RefCharge("unit", price=_price(draw, currency), **common)
    if model == "package":
        return RefCharge("package", price=_fee(draw, currency) / 10,
                         package_size=draw(st.integers(1, 500)),
                         free_units=draw(st.integers(0, 300)), **common)
    bounds = sorted(draw(st.sets(st.integers(1, 3000), max_size=3)))
    ups: list[int | None] = [*bounds, None]
    tiers = tuple(RefTier(up, _price(draw, currency),
                          draw(st.sampled_from([Fraction(0), Fraction(0), Fraction(5)]))
                          * SCALE[currency]) for up in ups)
    return RefCharge(model, tiers=tiers, **common)


@st.composite
def payment_charge(draw: st.DrawFn, currency: str, yearly: bool, vat_class: str) -> RefCharge:
    """A percentage of the ``pay`` metric, per transaction when it has a fee, min or max."""
    rate = Fraction(draw(st.integers(0, 500)), 100)  # 0 .. 5 %
    fixed = Fraction(draw(st.sampled_from([0, 0, 25, 30])), 100) * SCALE[currency]
    low = draw(st.sampled_from([None, None, Fraction(50, 100)]))
    high = draw(st.sampled_from([None, None, Fraction(4)]))
    low, high = (None if v is None else v * SCALE[currency] for v in (low, high))
    model = "percentage" if (fixed, low, high) == (0, None, None) else "per_transaction"
    return RefCharge(model, "pay", rate=rate, fixed=fixed, low=low, high=high,
                     vat_class=vat_class, yearly_usage=yearly and draw(st.booleans()))


@st.composite
def plan(draw: st.DrawFn, code: str, currency: str, oss: bool) -> RefPlan:
    yearly = draw(st.integers(0, 3)) == 0
    classes = ["standard"] if oss else ["standard"] * 4 + ["intermediate", "reduced",
                                                           "super_reduced"]
    vat_class = draw(st.sampled_from(classes))
    charges: list[RefCharge] = []
    if draw(st.booleans()):
        charges.append(RefCharge("fee", price=_fee(draw, currency), vat_class=vat_class))
    for metric in sorted(draw(st.sets(st.sampled_from(USAGE_METRICS), max_size=3))):
        charges.append(draw(usage_charge(metric, currency, yearly, vat_class)))
    if draw(st.integers(0, 3)) == 0:
        charges.append(draw(payment_charge(currency, yearly, vat_class)))
    if not charges:
        charges.append(RefCharge("fee", price=_fee(draw, currency), vat_class=vat_class))
    return RefPlan(code, yearly, tuple(charges))


def _value(draw: st.DrawFn, metric: str) -> Fraction | None:
    if metric == "hits":
        return None
    top = {"calls": 5000, "peak": 900, "users": 1, "last": 800, "gb": 4000, "seats": 60,
           "pay": 500}[metric]
    value = Fraction(draw(st.integers(0, top)))
    if metric in ("calls", "pay", "gb") and draw(st.booleans()):
        value += Fraction(draw(st.integers(0, 99)), 100)
    return value


def _events(draw: st.DrawFn, reference: str, metric: str) -> list[RefEvent]:
    count = draw(st.integers(0, 6))
    offsets: set[datetime] = set()
    for _ in range(count):
        start, seconds = draw(st.sampled_from([RECENT, RECENT, LONG]))
        offsets.add(start + timedelta(seconds=draw(st.integers(0, seconds - 1))))
    events = []
    for n, at in enumerate(sorted(offsets)):
        props: tuple[tuple[str, str], ...] = ()
        if metric == "users":
            props = (("user", f"u{draw(st.integers(1, 4))}"),)
        elif metric == "seats":
            props = (("pool", draw(st.sampled_from("abc"))),)
        events.append(RefEvent(f"{reference}-{metric}-{n}", metric, at, _value(draw, metric),
                               props, late=draw(st.integers(0, 4)) == 0))
    return events


def _start(draw: st.DrawFn, yearly: bool) -> date:
    if yearly:
        month = draw(st.sampled_from([(2025, 10), (2025, 11), (2026, 3), (2026, 10)]))
    else:
        month = draw(st.sampled_from([(2026, 1), (2026, 1), (2026, 9), (2026, 10)]))
    day = draw(st.sampled_from([1, 1, draw(st.integers(2, 28))]))
    return date(*month, day)


@st.composite
def account(draw: st.DrawFn, index: int, plans: dict[str, RefPlan], currency: str,
            oss: bool) -> RefAccount:
    # OSS candidates (consumers, businesses without a valid VAT id) only where every charge
    # is of the standard class: the destination rates of other classes are not modelled.
    kinds = ["eu_consumer", "eu_no_vat_id", *sorted(COUNTRY)] if oss else \
        [k for k in sorted(COUNTRY) if k != "eu_no_vat_id"]
    kind = draw(st.sampled_from(kinds))
    country = draw(st.sampled_from(sorted(OSS_RATES))) if kind == "eu_consumer" \
        else COUNTRY[kind]
    first = draw(st.sampled_from(sorted(plans)))
    reference = f"R{index:03d}"
    acc = RefAccount(reference, kind, country, first, _start(draw, plans[first].yearly))
    after = max(acc.start, date(2026, 8, 31))
    same = [c for c in sorted(plans) if c != first and plans[c].yearly == plans[first].yearly]
    if same and draw(st.booleans()):
        day = after + timedelta(days=draw(st.integers(1, 61)))
        if day < date(2026, 11, 1):
            acc.change = (day, draw(st.sampled_from(same)))
            after = day
    if draw(st.integers(0, 3)) == 0:
        day = after + timedelta(days=draw(st.integers(1, 61)))
        if day < date(2026, 11, 1):
            acc.cancel = (day, draw(st.booleans()))
    elif draw(st.integers(0, 3)) == 0:
        acc.trial_end = acc.start + timedelta(days=draw(st.integers(1, 420)))
    used = {c.metric for code in plans for c in plans[code].charges if c.metric}
    for metric in sorted(used):
        acc.events += _events(draw, reference, metric)
    step = 10 ** (CURRENCIES[currency][0] - CURRENCIES[currency][1])
    acc.credits = tuple(draw(st.sampled_from([0, 0, 0, draw(st.integers(1, 60_000))])) * step
                        for _ in range(2))  # type: ignore[assignment]
    return acc


@st.composite
def cases(draw: st.DrawFn) -> RefCase:
    currency = draw(st.sampled_from(["EUR", "EUR", "EUR", "USD", "JPY", "KWD"]))
    oss = draw(st.booleans())
    codes = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    plans = {code: draw(plan(code, currency, oss)) for code in codes}
    accounts = [draw(account(i, plans, currency, oss))
                for i in range(1, draw(st.integers(1, 4)) + 1)]
    return RefCase(currency, plans, accounts, opted_in=oss and draw(st.integers(0, 9)) == 0)
