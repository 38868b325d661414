"""Rating: one account's subscription, catalog and usage become draft invoice lines and totals.

The invoice that *opens* period ``P`` holds, in this order: the fixed fees of ``P`` billed in
advance, the proration lines of the previous period, then the usage of the previous period
billed in arrears (rated with the plan version of the last billable phase of that period).
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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from enum import StrEnum

from sealbill.domain.catalog import (
    Charge,
    ChargeError,
    ChargeModel,
    Plan,
    PlanCatalog,
    PriceComponent,
)
from sealbill.domain.invoices import InvoiceLine, TaxSubtotal, VatCategory, tax_breakdown, totals
from sealbill.domain.money import to_minor
from sealbill.domain.subscriptions import (
    Period,
    Subscription,
    UsageScope,
    fixed_fee_lines,
    format_date,
    usage_scope,
    validate_subscription,
)
from sealbill.domain.taxes import TaxError, VatContext, VatRateClass, VatTreatment
from sealbill.domain.usage import (
    Aggregator,
    Metric,
    UsageEvent,
    canonical_decimal,
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
class AccountContext:
    account_reference: str
    currency: str
    locale: str  # "fr" | "en"
    vat: VatContext


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
    account or outside the scope raise. ``initial_values`` seeds time-weighted sums.

    >>> from sealbill.domain.catalog import ChargeProperties, Interval
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
                 initial_values: Mapping[str, Decimal] | None = None) -> None:
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
    >>> tier = PriceComponent("tier", Decimal(50), Decimal(1), 2, Decimal(100), None)
    >>> c = Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls", metric_code="m")
    >>> describe_component(c, tier, Period(date(2024, 3, 1), date(2024, 4, 1)), "fr")
    'Appels API - palier 2 (au-delà de 100) - consommation du 01/03/2024 au 31/03/2024'
    """
    words = _TEXT.get(locale, _TEXT["fr"])
    key = "open" if part.kind == "tier" and part.upper is None else part.kind
    detail = words.get(key, "").format(tier=part.tier, lower=_plain(part.lower),
                                       upper=_plain(part.upper))
    first, last = format_date(period.start, locale), format_date(period.end - timedelta(1), locale)
    span = f"du {first} au {last}" if locale != "en" else f"{first} to {last}"
    return " - ".join(t for t in (charge.description(locale), detail,
                                  f"{words['usage']} {span}") if t)


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


def rate_account(
    account: AccountContext,
    subscription: Subscription,
    catalog: PlanCatalog,
    period: Period,
    usage: UsageTotals | None = None,
) -> DraftInvoice:
    """The draft invoice opening ``period``; :class:`RatingError` lists every problem.

    ``usage`` is the meter result for the previous period; it may be ``None`` only when nothing
    of that period is billable (trial, not yet subscribed).
    """
    if problems := _context_problems(account, subscription, catalog):
        raise RatingError(problems)
    fees = fixed_fee_lines(subscription, catalog, period)
    usage_period = subscription.previous_period(period)
    scope = usage_scope(subscription, catalog, usage_period)
    plan = None if scope is None else scope.plan
    parts = [] if plan is None else _usage_parts(plan, usage, problems)
    plans = {fee.plan for fee in fees} | ({plan} if plan else set())
    problems += sorted(f"plan {p.code} v{p.version} is in {p.currency}, the account in "
                       f"{account.currency}" for p in plans if p.currency != account.currency)
    if problems:
        raise RatingError(problems)
    out = _Lines(account)
    for fee in fees:
        out.add(fee.charge, fee.description(account.locale), fee.quantity, fee.unit_price,
                fee.amount_minor, Period(fee.start, fee.end))
    for charge, part in parts:
        out.add(charge, describe_component(charge, part, usage_period, account.locale),
                Decimal(part.quantity), part.unit_price,
                to_minor(part.amount, account.currency), usage_period)
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
