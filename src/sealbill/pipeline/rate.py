"""Rate one account for one period: fixed fees in advance, usage of the previous period in
arrears, each line taxed by the account's VAT treatment, VAT summed per rate.

Rating one account needs only that account's rows, so the billing stage streams accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sealbill.domain.catalog import Charge, Plan, PlanCatalog
from sealbill.domain.fixed_fees import FeeSpan, Phase, fee_spans, prorate
from sealbill.domain.invoices import InvoiceLine, VatCategory, tax_breakdown, totals
from sealbill.domain.money import to_major, to_minor
from sealbill.domain.taxes import VatContext
from sealbill.domain.usage import Aggregation, Aggregator, Metric, UsageEvent, make_aggregator
from sealbill.store.invoices import DraftInvoice


def previous_period(start: date) -> tuple[date, date]:
    year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    return date(year, month, 1), start


@dataclass(frozen=True)
class AccountRating:
    """The account row and its seller, as rating needs them."""

    row: Mapping[str, Any]
    org: Mapping[str, Any]

    @property
    def vat(self) -> VatContext:
        return VatContext(self.row["country"], bool(self.row["is_business"]),
                          bool(self.row["vat_id_valid"]), self.org["country"])


class UsageFeed:
    """Streaming aggregation of a chunk's usage rows, per (account, metric)."""

    def __init__(self, metrics: Mapping[str, Mapping[str, Any]], start: datetime,
                 end: datetime) -> None:
        self._metrics = {code: Metric(code, Aggregation(m["aggregation"]), m["field"])
                         for code, m in metrics.items()}
        self._start, self._end = start, end
        self._aggregators: dict[int, dict[str, Aggregator]] = {}

    def consume(self, rows: Iterable[Any]) -> None:
        for row in rows:
            by_metric = self._aggregators.setdefault(int(row.account_id), {})
            aggregator = by_metric.get(row.metric_code)
            if aggregator is None:
                aggregator = make_aggregator(self._metrics[row.metric_code], self._start,
                                             self._end)
                by_metric[row.metric_code] = aggregator
            aggregator.add(UsageEvent(row.event_id, "", row.metric_code, row.occurred_at,
                                      row.value, row.properties or {}))

    def for_account(self, account_id: int) -> dict[str, Decimal]:
        return {metric: agg.result()
                for metric, agg in self._aggregators.get(account_id, {}).items()}


@dataclass
class Rating:
    lines: list[InvoiceLine]
    currency: str
    locale: str
    exemption_reasons: dict[VatCategory, str]

    @property
    def subtotals(self) -> Any:
        return tax_breakdown(self.lines, self.currency, self.exemption_reasons)

    @property
    def total_incl_minor(self) -> int:
        return totals(self.subtotals)[2]

    def draft(self, billing_key: str, row: Mapping[str, Any], start: date,
              end: date) -> DraftInvoice:
        subtotals = self.subtotals
        excl, tax, incl = totals(subtotals)
        return DraftInvoice(int(row["id"]), row["reference"], billing_key, self.currency,
                            self.locale, start, end, self.lines, subtotals, excl, tax, incl)


def _phases(rows: Sequence[Mapping[str, Any]]) -> list[Phase]:
    return [Phase(r["plan_code"], r["start_on"], r["end_on"]) for r in rows]


def rate_account(account: AccountRating, phase_rows: Sequence[Mapping[str, Any]],
                 catalog: PlanCatalog, usage: Mapping[str, Decimal], start: date,
                 end: date) -> Rating:
    row = account.row
    currency, locale = row["currency"], row["locale"]
    rating = Rating([], currency, locale, {})
    previous = previous_period(start)
    if phase_rows:
        first = phase_rows[0]
        spans = fee_spans(_phases(phase_rows), previous, (start, end),
                          trial_end=first["trial_ends_on"], ends_on=first["ends_on"])
        for span in spans:
            plan = catalog.price_for(span.plan_code, span.start)
            for charge in plan.fixed_charges:
                _add(rating, account, charge, *_fee_line(charge, span, plan, locale))
        usage_plan = _plan_at(phase_rows, catalog, previous)
        if usage_plan is not None:
            for charge in usage_plan.usage_charges:
                _add_usage(rating, account, charge, usage.get(charge.metric_code or "",
                                                              Decimal(0)))
    return rating


def _plan_at(phase_rows: Sequence[Mapping[str, Any]], catalog: PlanCatalog,
             period: tuple[date, date]) -> Plan | None:
    """The plan of the last phase that overlaps ``period``: its usage prices apply."""
    overlapping = [r for r in phase_rows if r["start_on"] < period[1]
                   and (r["end_on"] is None or r["end_on"] > period[0])]
    if not overlapping:
        return None
    last = overlapping[-1]
    return catalog.price_for(last["plan_code"], max(last["start_on"], period[0]))


_SPAN_LABEL = {
    ("fr", "advance"): "{d} — du {s} au {e}",
    ("en", "advance"): "{d} — {s} to {e}",
    ("fr", "adjustment_charge"): "{d} — prorata {n}/{t} jours ({p}, du {s} au {e})",
    ("en", "adjustment_charge"): "{d} — prorated {n}/{t} days ({p}, {s} to {e})",
    ("fr", "adjustment_credit"): "Avoir : {d} non utilisé ({p}, du {s} au {e})",
    ("en", "adjustment_credit"): "Credit: unused {d} ({p}, {s} to {e})",
}


def _fee_line(charge: Charge, span: FeeSpan, plan: Plan,
              locale: str) -> tuple[str, Decimal, Decimal, int]:
    full = to_minor(charge.amount(Decimal(1)), plan.currency)
    amount = span.sign * prorate(full, span.days, span.days_in_period)
    label = _SPAN_LABEL[(locale if locale == "en" else "fr", span.reason)].format(
        d=charge.description(locale), n=span.days, t=span.days_in_period, p=plan.name,
        s=span.start.isoformat(), e=span.end.isoformat())
    return label, Decimal(span.sign), to_major(abs(amount), plan.currency), amount


def _add_usage(rating: Rating, account: AccountRating, charge: Charge,
               quantity: Decimal) -> None:
    for component in charge.components(quantity):
        amount = to_minor(component.amount, rating.currency)
        if amount == 0:
            continue
        label = charge.description(rating.locale)
        if component.tier is not None:
            label += f" (palier {component.tier})" if rating.locale == "fr" \
                else f" (tier {component.tier})"
        _add(rating, account, charge, label, Decimal(component.quantity),
             component.unit_price, amount)


def _add(rating: Rating, account: AccountRating, charge: Charge, description: str,
         quantity: Decimal, unit_price: Decimal, amount_minor: int) -> None:
    treatment = account.vat.treatment(charge.vat_rate_class)
    if treatment.exemption_reason:
        rating.exemption_reasons[treatment.category] = treatment.mention(rating.locale)
    rating.lines.append(InvoiceLine(len(rating.lines) + 1, description, quantity, unit_price,
                                    amount_minor, treatment.category, treatment.rate))
