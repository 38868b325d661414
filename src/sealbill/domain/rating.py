"""Rating: one account's subscription, catalog and usage become draft invoice lines and totals.

The invoice that *opens* period ``P`` holds, in this order: the fixed fees of ``P`` billed in
advance, the proration lines of the previous period, then the usage billed in arrears, one
group of lines per :class:`~sealbill.domain.usage_windows.UsageSegment` — each part of a usage
window between two plan changes, rated with the plan version in force then (so the usage
before a downgrade keeps the old prices), on each charge's own cadence.
Everything :func:`rate_account` needs is about one account: a pipeline streams accounts one by
one, feeding each account's events to a :class:`UsageMeter`.

Invariants:

- every line amount is ``to_minor(quantity × unit_price)`` — half-up, once per line; VAT is
  computed per (category, rate) over the sum of the lines by ``invoices.tax_breakdown``;
- ``total_excl`` is the sum of the line amounts and ``total_incl = total_excl + tax_total``;
- a meter or a rating run refuses data of another account (``account_reference`` mismatch);
- ``InvoiceLine.period_end`` is the *last day* of the line's period (inclusive, as printed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from sealbill.domain.catalog import (
    Charge,
    ChargeError,
    Plan,
    PlanCatalog,
    PriceComponent,
)
from sealbill.domain.invoices import InvoiceLine, TaxSubtotal, VatCategory, tax_breakdown, totals
from sealbill.domain.metering import RatingError as RatingError
from sealbill.domain.metering import TransactionFeeAccumulator as TransactionFeeAccumulator
from sealbill.domain.metering import TransactionTotals as TransactionTotals
from sealbill.domain.metering import UsageMeter as UsageMeter
from sealbill.domain.metering import UsageTotals as UsageTotals
from sealbill.domain.metering import needs_transactions as needs_transactions
from sealbill.domain.metering import transaction_components as transaction_components
from sealbill.domain.metering import transaction_fee as transaction_fee
from sealbill.domain.money import to_minor
from sealbill.domain.subscriptions import (
    FixedFeeLine,
    Period,
    Subscription,
    fixed_fee_lines,
    format_date,
    usage_scope,
    validate_subscription,
)
from sealbill.domain.taxes import TaxError, VatContext, VatRateClass, VatTreatment
from sealbill.domain.usage import canonical_decimal
from sealbill.domain.usage_windows import UsageSegment

#: A usage segment and what its meter measured.
RatedUsage = tuple[UsageSegment, UsageTotals]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class AccountContext:
    account_reference: str
    currency: str
    locale: str  # "fr" | "en"
    vat: VatContext



_TEXT = {
    "fr": {"tier": "palier {tier} ({lower} à {upper})",
           "open": "palier {tier} (au-delà de {lower})", "tier_fee": "forfait du palier {tier}",
           "package": "paquets de {upper}", "percentage": "commission",
           "transaction_fee": "frais fixes par transaction",
           "transaction_fees": "frais de transaction", "usage": "consommation"},
    "en": {"tier": "tier {tier} ({lower} to {upper})", "open": "tier {tier} (above {lower})",
           "tier_fee": "tier {tier} flat fee", "package": "packages of {upper}",
           "percentage": "commission", "transaction_fee": "fixed fee per transaction",
           "transaction_fees": "transaction fees", "usage": "usage"},
}


def _plain(value: Decimal | None) -> str:
    return "" if value is None else canonical_decimal(value)


def describe_component(charge: Charge, part: PriceComponent, period: Period, locale: str) -> str:
    """Line text: charge description, component detail, usage period.

    >>> from datetime import date
    >>> from sealbill.domain.catalog import ChargeModel
    >>> tier = PriceComponent("tier", Decimal(50), Decimal(1), 2, Decimal(100), None)
    >>> c = Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls", metric_code="m")
    >>> describe_component(c, tier, Period(date(2024, 3, 1), date(2024, 4, 1)), "fr")
    'Appels API - palier 2 (au-delà de 100) - consommation du 01/03/2024 au 31/03/2024'
    """
    return _component_text(charge.description(locale), part.kind, part.tier, part.lower,
                           part.upper, period, locale)


@lru_cache(maxsize=4096)
def _component_text(text: str, kind: str, tier: int | None, lower: Decimal | None,
                    upper: Decimal | None, period: Period, locale: str) -> str:
    """:func:`describe_component` of its inputs that matter (pure: cached, since the same
    charge, tier and period recur on most accounts of a run)."""
    words = _TEXT.get(locale, _TEXT["fr"])
    key = "open" if kind == "tier" and upper is None else kind
    detail = words.get(key, "").format(tier=tier, lower=_plain(lower), upper=_plain(upper))
    first, last = format_date(period.start, locale), format_date(period.end - timedelta(1), locale)
    span = f"du {first} au {last}" if locale != "en" else f"{first} to {last}"
    return " - ".join(t for t in (text, detail, f"{words['usage']} {span}") if t)


@dataclass(frozen=True, slots=True)
class DraftInvoice:
    """What the invoice opening ``period`` will say, before a number is given."""

    account_reference: str
    currency: str
    locale: str
    period: Period
    usage_period: Period
    lines: tuple[InvoiceLine, ...]
    tax_subtotals: tuple[TaxSubtotal, ...]
    total_excl_minor: int
    tax_total_minor: int
    total_incl_minor: int
    mentions: tuple[str, ...] = ()


@dataclass(slots=True)
class _Lines:
    """Accumulates the lines of one draft with their VAT treatments."""

    account: AccountContext
    lines: list[InvoiceLine] = field(default_factory=list)
    treatments: list[VatTreatment] = field(default_factory=list)

    def add(self, charge: Charge, text: str, quantity: Decimal, unit_price: Decimal,
            amount_minor: int, span: Period) -> None:
        vat = self.account.vat.treatment(charge.vat_rate_class)
        self.treatments.append(vat)
        self.lines.append(InvoiceLine(
            len(self.lines) + 1, text, quantity, unit_price, amount_minor, vat.category,
            vat.rate, period_start=span.start, period_end=span.end - timedelta(days=1)))


def _usage_parts(
    plan: Plan, usage: UsageTotals | None, problems: list[str]
) -> list[tuple[Charge, PriceComponent]]:
    parts: list[tuple[Charge, PriceComponent]] = []
    for charge in plan.usage_charges:
        try:
            if needs_transactions(charge):
                found = None if usage is None else usage.transactions.get(charge.code)
                if found is None:
                    problems.append(f"charge {charge.code}: transaction totals missing")
                    continue
                parts += [(charge, part) for part in transaction_components(charge, found)]
                continue
            quantity = None if usage is None else usage.quantities.get(charge.metric_code or "")
            if quantity is None:
                problems.append(f"charge {charge.code}: usage of {charge.metric_code} missing")
                continue
            parts += [(charge, part) for part in charge.components(quantity)]
        except ChargeError as error:
            problems.append(str(error))
    return parts


def _context_problems(
    account: AccountContext, subscription: Subscription, catalog: PlanCatalog
) -> list[str]:
    problems = validate_subscription(subscription, catalog)
    if subscription.account_reference != account.account_reference:
        problems.append(f"subscription {subscription.subscription_id} belongs to "
                        f"{subscription.account_reference!r}, not {account.account_reference!r}")
    try:
        account.vat.treatment(VatRateClass.STANDARD)
    except TaxError as error:
        problems.append(f"account {account.account_reference}: {error}")
    return problems


def _legacy_usage(subscription: Subscription, catalog: PlanCatalog, period: Period,
                  usage: UsageTotals | None) -> list[RatedUsage]:
    """One meter result for the whole previous period, rated with its last phase's plan:
    right only when that period has a single phase (callers with plan changes pass segments)."""
    previous = subscription.previous_period(period)
    scope = usage_scope(subscription, catalog, previous)
    if scope is None:
        return []
    segment = UsageSegment(subscription.interval, previous, scope.start.date(),
                           scope.end.date(), scope.plan)
    return [(segment, usage if usage is not None else _MISSING)]


_MISSING = UsageTotals()  # no measure: every usage charge is reported as missing


def rate_account(
    account: AccountContext,
    subscription: Subscription,
    catalog: PlanCatalog,
    period: Period,
    usage: UsageTotals | Sequence[RatedUsage] | None = None,
    *,
    fees: bool = True,
    fee_lines: Sequence[FixedFeeLine] | None = None,
) -> DraftInvoice:
    """The draft invoice opening ``period``; :class:`RatingError` lists every problem.

    ``usage``: the metered :class:`~sealbill.domain.usage_windows.UsageSegment` s this invoice
    bills (:func:`~sealbill.domain.usage_windows.usage_segments`), or one meter result for
    the previous period (a subscription without plan change), or ``None`` when nothing of it
    is billable. ``fees=False``: no fixed fee is due (a month inside a yearly period).
    ``fee_lines``: what ``fixed_fee_lines(subscription, catalog, period)`` returns, when the
    caller has it already (a cache per subscription shape: ``pipeline/billing/rating_cache.py``).
    """
    if problems := _context_problems(account, subscription, catalog):
        raise RatingError(problems)
    if not fees:
        fee_lines = []
    elif fee_lines is None:
        fee_lines = fixed_fee_lines(subscription, catalog, period)
    rated = (_legacy_usage(subscription, catalog, period, usage)
             if usage is None or isinstance(usage, UsageTotals) else list(usage))
    parts = [(charge, part, segment) for segment, totals in rated
             for charge, part in _usage_parts(segment.plan, totals, problems)]
    # (code, version, currency), not the plans: hashing a whole plan costs more than rating
    plans = {(fee.plan.code, fee.plan.version, fee.plan.currency) for fee in fee_lines} | {
        (s.plan.code, s.plan.version, s.plan.currency) for s, _ in rated}
    problems += sorted({f"plan {code} v{version} is in {currency}, the account in "
                        f"{account.currency}" for code, version, currency in plans
                        if currency != account.currency})
    if problems:
        raise RatingError(problems)
    out = _Lines(account)
    for fee in fee_lines:
        out.add(fee.charge, fee.description(account.locale), fee.quantity, fee.unit_price,
                fee.amount_minor, Period(fee.start, fee.end))
    for charge, part, segment in parts:
        out.add(charge, describe_component(charge, part, segment.span, account.locale),
                Decimal(part.quantity), part.unit_price,
                to_minor(part.amount, account.currency), segment.span)
    windows = [segment.window for segment, _ in rated]
    usage_period = (Period(min(w.start for w in windows), max(w.end for w in windows))
                    if windows else subscription.previous_period(period))
    return _draft(account, period, usage_period, out.lines, out.treatments)


def _draft(account: AccountContext, period: Period, usage_period: Period,
           lines: list[InvoiceLine], treatments: list[VatTreatment]) -> DraftInvoice:
    reasons: dict[VatCategory, str] = {
        t.category: t.exemption_reason for t in treatments if t.exemption_reason}
    subtotals = tax_breakdown(lines, account.currency, reasons)
    excl, tax, incl = totals(subtotals)
    mentions = tuple(dict.fromkeys(t.mention(account.locale) for t in treatments
                                   if t.mention(account.locale)))
    return DraftInvoice(account.account_reference, account.currency, account.locale, period,
                        usage_period, tuple(lines), subtotals, excl, tax, incl, mentions)


class ZeroAmountRule(StrEnum):
    SKIP = "skip"
    ISSUE = "issue"


class IssueDecision(StrEnum):
    ISSUE = "issue"
    SKIP = "skip"
    CREDIT_NOTE = "credit_note"  # negative total: issue a credit note (or carry the credit)


def issue_decision(draft: DraftInvoice, rule: ZeroAmountRule) -> IssueDecision:
    """Whether to issue ``draft``: never without lines; a zero total follows ``rule``.

    >>> from datetime import date
    >>> p = Period(date(2024, 4, 1), date(2024, 5, 1))
    >>> empty = DraftInvoice("C-1", "EUR", "fr", p, p, (), (), 0, 0, 0)
    >>> issue_decision(empty, ZeroAmountRule.ISSUE).value
    'skip'
    """
    if not draft.lines:
        return IssueDecision.SKIP
    if draft.total_incl_minor < 0:
        return IssueDecision.CREDIT_NOTE
    if draft.total_incl_minor == 0 and rule is ZeroAmountRule.SKIP:
        return IssueDecision.SKIP
    return IssueDecision.ISSUE
