"""Rating one account: draft lines, VAT breakdown, totals and the issue decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
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
from sealbill.domain.invoices import VatCategory
from sealbill.domain.rating import (
    AccountContext,
    DraftInvoice,
    IssueDecision,
    RatingError,
    TransactionTotals,
    UsageMeter,
    UsageTotals,
    ZeroAmountRule,
    issue_decision,
    rate_account,
)
from sealbill.domain.subscriptions import (
    Cancellation,
    CancellationMode,
    Period,
    Phase,
    Subscription,
    UsageScope,
    usage_scope,
)
from sealbill.domain.taxes import VatContext, VatRateClass
from sealbill.domain.usage import Aggregation, Metric, UsageEvent

APRIL = Period(date(2024, 4, 1), date(2024, 5, 1))
MARCH_START = datetime(2024, 3, 1, tzinfo=UTC)
APRIL_START = datetime(2024, 4, 1, tzinfo=UTC)
METRICS = [Metric("calls", Aggregation.SUM), Metric("storage", Aggregation.TIME_WEIGHTED_SUM),
           Metric("payments", Aggregation.SUM, "amount")]


def flat(code: str, amount: str, rate_class: VatRateClass = VatRateClass.STANDARD) -> Charge:
    return Charge(code, ChargeModel.FLAT, f"Forfait {code}", f"{code} fee",
                  ChargeProperties(amount=D(amount)), vat_rate_class=rate_class)


API = Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls", ChargeProperties(
    tiers=(Tier(D(1000), D(0)), Tier(None, D("0.0015")))), metric_code="calls")
STORAGE = Charge("storage", ChargeModel.PER_UNIT, "Stockage", "Storage",
                 ChargeProperties(unit_price=D("0.10")), metric_code="storage")
CARD = Charge("card", ChargeModel.PERCENTAGE, "Paiements", "Payments",
              ChargeProperties(rate=D("1.4"), fixed_fee=D("0.25")), metric_code="payments")
PRO = Plan("pro", "Pro", Interval.MONTH, "EUR", 1, date(2024, 1, 1), (
    flat("base", "49.00"), flat("support", "10.00", VatRateClass.REDUCED), API, STORAGE, CARD))
CATALOG = PlanCatalog([PRO])


def scope(plan: Plan = PRO) -> UsageScope:
    return UsageScope(plan, MARCH_START, APRIL_START, APRIL_START - MARCH_START)


def account(country: str = "FR", locale: str = "fr", *, business: bool = True,
            valid: bool = True, currency: str = "EUR") -> AccountContext:
    return AccountContext("C-1", currency, locale, VatContext(country, business, valid))


def subscription(**kwargs: object) -> Subscription:
    return Subscription("S-1", "C-1", Interval.MONTH, date(2024, 1, 1),
                        (Phase("pro", date(2024, 1, 1)),), **kwargs)  # type: ignore[arg-type]


def march_usage() -> UsageTotals:
    meter = UsageMeter("C-1", scope(), METRICS)
    meter.add(UsageEvent("c1", "C-1", "calls", MARCH_START, D(12000)))
    meter.add(UsageEvent("c2", "C-1", "calls", MARCH_START + timedelta(days=3), D(345)))
    meter.add(UsageEvent("s1", "C-1", "storage", MARCH_START, D(25)))
    meter.add(UsageEvent("s2", "C-1", "storage", datetime(2024, 3, 16, 12, tzinfo=UTC), D(0)))
    for n, amount in enumerate(("100.00", "20.00", "0.10")):
        meter.add(UsageEvent(f"p{n}", "C-1", "payments", MARCH_START, None, {"amount": amount}))
    meter.add(UsageEvent("x", "C-1", "not-billed", MARCH_START, D(1)))
    assert meter.ignored == 1
    return meter.result()


def test_rating_an_account_bills_fixed_fees_ahead_and_usage_behind_with_vat_per_rate() -> None:
    draft = rate_account(account(), subscription(), CATALOG, APRIL, march_usage())
    got = [(line.position, line.quantity, line.unit_price, line.amount_minor,
            line.vat_category, line.vat_rate) for line in draft.lines]
    s = VatCategory.STANDARD
    assert got == [
        (1, D(1), D("49.00"), 4900, s, D(20)),
        (2, D(1), D("10.00"), 1000, s, D("5.5")),
        (3, D(1000), D(0), 0, s, D(20)),  # free first tier
        (4, D(11345), D("0.0015"), 1702, s, D(20)),  # 17.0175 rounded half-up once
        (5, D("12.5"), D("0.10"), 125, s, D(20)),  # 25 GB for half of March
        (6, D("120.10"), D("0.014"), 168, s, D(20)),  # 1.6814
        (7, D(3), D("0.25"), 75, s, D(20)),
    ]
    assert [(t.rate, t.base_minor, t.tax_minor) for t in draft.tax_subtotals] == [
        (D(20), 6970, 1394), (D("5.5"), 1000, 55)]
    assert (draft.total_excl_minor, draft.tax_total_minor, draft.total_incl_minor) == (
        7970, 1449, 9419)
    assert draft.lines[0].period_start == date(2024, 4, 1)
    assert draft.lines[0].period_end == date(2024, 4, 30)
    assert draft.lines[3].period_start == date(2024, 3, 1)
    assert draft.lines[3].description == (
        "Appels API - palier 2 (au-delà de 1000) - consommation du 01/03/2024 au 31/03/2024")
    assert draft.mentions == ()


def test_descriptions_follow_the_account_locale() -> None:
    draft = rate_account(account(locale="en"), subscription(), CATALOG, APRIL, march_usage())
    assert draft.lines[0].description == "base fee - Pro (2024-04-01 to 2024-04-30)"
    assert draft.lines[6].description == (
        "Payments - fixed fee per transaction - usage 2024-03-01 to 2024-03-31")


def test_an_eu_business_is_reverse_charged_with_the_legal_mention() -> None:
    draft = rate_account(account("BE"), subscription(), CATALOG, APRIL, march_usage())
    assert {(line.vat_category, line.vat_rate) for line in draft.lines} == {
        (VatCategory.REVERSE_CHARGE, D(0))}
    [subtotal] = draft.tax_subtotals
    assert (subtotal.base_minor, subtotal.tax_minor) == (7970, 0)
    assert subtotal.exemption_code == "VATEX-EU-AE"
    assert subtotal.exemption_reason and "Autoliquidation" in subtotal.exemption_reason
    assert len(draft.mentions) == 1 and draft.mentions[0].startswith("Autoliquidation")


def test_a_buyer_outside_the_eu_is_out_of_scope_of_french_vat() -> None:
    draft = rate_account(account("US", "en"), subscription(), CATALOG, APRIL, march_usage())
    assert draft.tax_total_minor == 0
    assert draft.tax_subtotals[0].exemption_code == "VATEX-EU-O"
    assert draft.mentions == ("VAT not applicable, article 259-1 of the French tax code (CGI)",)


def test_rating_refuses_data_of_another_account() -> None:
    other = AccountContext("C-2", "EUR", "fr", VatContext("FR", True, True))
    with pytest.raises(RatingError, match="belongs to 'C-1', not 'C-2'"):
        rate_account(other, subscription(), CATALOG, APRIL, march_usage())
    meter = UsageMeter("C-1", scope(), METRICS)
    with pytest.raises(RatingError, match="fed to the meter of 'C-1'"):
        meter.add(UsageEvent("e", "C-2", "calls", MARCH_START, D(1)))
    with pytest.raises(RatingError, match="outside the meter window"):
        meter.add(UsageEvent("e", "C-1", "calls", APRIL_START, D(1)))


def test_missing_usage_is_reported_for_every_charge_at_once() -> None:
    with pytest.raises(RatingError) as caught:
        rate_account(account(), subscription(), CATALOG, APRIL,
                     UsageTotals({"calls": D(1)}))
    assert caught.value.problems == (
        "charge storage: usage of storage missing", "charge card: transaction totals missing")


def test_a_plan_in_another_currency_than_the_account_is_refused() -> None:
    with pytest.raises(RatingError, match="is in EUR, the account in USD"):
        rate_account(account(currency="USD"), subscription(), CATALOG, APRIL, march_usage())


def test_a_meter_needs_every_metric_its_plan_bills() -> None:
    with pytest.raises(RatingError, match="metric 'payments' is not defined"):
        UsageMeter("C-1", scope(), METRICS[:2])


def test_per_transaction_minimum_is_billed_as_one_total_line() -> None:
    fees = Charge("fees", ChargeModel.PERCENTAGE, "Frais", "Fees", ChargeProperties(
        rate=D(1), min_per_transaction=D("0.50"), max_per_transaction=D(2)), "payments")
    plan = Plan("pay", "Pay", Interval.MONTH, "EUR", 1, date(2024, 1, 1), (fees,))
    meter = UsageMeter("C-1", scope(plan), METRICS)
    for n, amount in enumerate(("10", "120", "1000")):  # fees 0.10→0.50, 1.20, 10→2
        meter.add(UsageEvent(f"p{n}", "C-1", "payments", MARCH_START, None, {"amount": amount}))
    sub = Subscription("S-1", "C-1", Interval.MONTH, date(2024, 1, 1),
                       (Phase("pay", date(2024, 1, 1)),))
    draft = rate_account(account(), sub, PlanCatalog([plan]), APRIL, meter.result())
    assert [(line.quantity, line.amount_minor) for line in draft.lines] == [(D(1), 370)]


def test_usage_after_a_trial_ending_mid_period_is_billed_for_the_paid_days_only() -> None:
    sub = subscription(trial_end=date(2024, 3, 17))
    found = usage_scope(sub, CATALOG, Period(date(2024, 3, 1), date(2024, 4, 1)))
    assert found is not None and found.start == datetime(2024, 3, 17, tzinfo=UTC)
    meter = UsageMeter("C-1", found, METRICS, initial_values={"storage": D(31)})
    with pytest.raises(RatingError, match="outside the meter window"):
        meter.add(UsageEvent("early", "C-1", "calls", MARCH_START, D(5000)))
    meter.add(UsageEvent("late", "C-1", "calls", datetime(2024, 3, 20, tzinfo=UTC), D(1001)))
    usage = meter.result()
    assert usage.quantities == {"calls": D(1001), "storage": D(15)}  # 31 GB for 15 of 31 days


def test_a_period_entirely_in_trial_yields_nothing_to_issue() -> None:
    draft = rate_account(account(), subscription(trial_end=date(2024, 6, 1)), CATALOG, APRIL)
    assert draft.lines == ()
    assert issue_decision(draft, ZeroAmountRule.ISSUE) is IssueDecision.SKIP


def test_zero_total_invoices_follow_the_zero_amount_rule() -> None:
    free = Plan("free", "Free", Interval.MONTH, "EUR", 1, date(2024, 1, 1), (flat("base", "0"),))
    sub = Subscription("S-1", "C-1", Interval.MONTH, date(2024, 4, 1),
                       (Phase("free", date(2024, 4, 1)),))
    draft = rate_account(account(), sub, PlanCatalog([free]), APRIL)
    assert [line.amount_minor for line in draft.lines] == [0]
    assert issue_decision(draft, ZeroAmountRule.SKIP) is IssueDecision.SKIP
    assert issue_decision(draft, ZeroAmountRule.ISSUE) is IssueDecision.ISSUE


def test_a_negative_total_calls_for_a_credit_note() -> None:
    cancelled = subscription(cancellation=Cancellation(date(2024, 4, 16),
                                                       CancellationMode.IMMEDIATE))
    may = Period(date(2024, 5, 1), date(2024, 6, 1))
    april_usage = UsageTotals({"calls": D(0), "storage": D(0)}, {"card": TransactionTotals()})
    draft = rate_account(account(), cancelled, CATALOG, may, april_usage)
    assert [line.amount_minor for line in draft.lines] == [-2450, -500]  # 15 of 30 days
    assert issue_decision(draft, ZeroAmountRule.ISSUE) is IssueDecision.CREDIT_NOTE


quantities = st.integers(0, 10**8).map(lambda n: D(n).scaleb(-3))


@settings(deadline=None, max_examples=60)
@given(quantities, quantities, st.lists(quantities, max_size=5),
       st.sampled_from(["FR", "DE", "US"]), st.booleans())
def test_totals_never_lose_a_minor_unit(
    calls: D, storage: D, payments: list[D], country: str, valid: bool
) -> None:
    meter = UsageMeter("C-1", scope(), METRICS)
    for n, amount in enumerate(payments):
        meter.add(UsageEvent(f"p{n}", "C-1", "payments", MARCH_START, None,
                             {"amount": str(amount)}))
    found = meter.result()
    usage = UsageTotals({"calls": calls, "storage": storage}, found.transactions)
    draft = rate_account(account(country, valid=valid), subscription(), CATALOG, APRIL, usage)
    check_draft_arithmetic(draft)


def check_draft_arithmetic(draft: DraftInvoice) -> None:
    for line in draft.lines:  # one half-up rounding per line, from the exact product
        exact = Fraction(line.quantity) * Fraction(line.unit_price) * 100
        assert abs(line.amount_minor - exact) <= Fraction(1, 2)
        if abs(line.amount_minor - exact) == Fraction(1, 2):
            assert abs(line.amount_minor) > abs(exact)
    assert draft.total_excl_minor == sum(line.amount_minor for line in draft.lines)
    assert draft.tax_total_minor == sum(t.tax_minor for t in draft.tax_subtotals)
    assert draft.total_incl_minor == draft.total_excl_minor + draft.tax_total_minor
    for subtotal in draft.tax_subtotals:
        members = [line for line in draft.lines
                   if (line.vat_category, line.vat_rate) == (subtotal.category, subtotal.rate)]
        assert subtotal.base_minor == sum(line.amount_minor for line in members)
        exact_tax = Fraction(subtotal.base_minor) * Fraction(subtotal.rate) / 100
        assert abs(subtotal.tax_minor - exact_tax) <= Fraction(1, 2)
