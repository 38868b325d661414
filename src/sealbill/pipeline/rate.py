"""Rate: stored rows of one account become domain objects, and the domain rates them.

Rating one account needs only that account's rows, so the billing stage streams accounts a
chunk at a time. Billing periods are calendar months: a subscription's billing anchor is the
1st of the month it started in. An account with several subscriptions gets one invoice with
the lines of all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.invoices import InvoiceLine, VatCategory, tax_breakdown, totals
from sealbill.domain.rating import AccountContext, DraftInvoice, UsageMeter, rate_account
from sealbill.domain.subscriptions import (
    Cancellation,
    CancellationMode,
    Period,
    Phase,
    Subscription,
    usage_scope,
)
from sealbill.domain.taxes import VatContext
from sealbill.domain.usage import Aggregation, Metric, UsageEvent
from sealbill.store.db import Row
from sealbill.store.invoices import DraftInvoice as StoredDraft


def previous_period(start: date) -> tuple[date, date]:
    year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    return date(year, month, 1), start


def account_context(row: Row, org: Row) -> AccountContext:
    vat = VatContext(row["country"], bool(row["is_business"]), bool(row["vat_id_valid"]),
                     org["country"])
    return AccountContext(row["reference"], row["currency"], row["locale"], vat)


def metrics_from_rows(rows: Mapping[str, Row]) -> list[Metric]:
    return [Metric(code, Aggregation(m["aggregation"]), m["field"]) for code, m in rows.items()]


def subscriptions_from_rows(reference: str, rows: Sequence[Row],
                            catalog: PlanCatalog) -> list[Subscription]:
    """Domain subscriptions from the (subscription, phase) rows of one account."""
    by_id: dict[int, list[Row]] = {}
    for row in rows:
        by_id.setdefault(int(row["subscription_id"]), []).append(row)
    result = []
    for phase_rows in by_id.values():
        first = phase_rows[0]
        started: date = first["started_on"]
        plan = catalog.price_for(first["plan_code"], max(first["start_on"], started))
        ends_on = first["ends_on"]
        result.append(Subscription(
            subscription_id=first["external_id"], account_reference=reference,
            interval=plan.interval, billing_anchor=date(started.year, started.month, 1),
            phases=tuple(Phase(r["plan_code"], r["start_on"], r["end_on"]) for r in phase_rows),
            trial_end=first["trial_ends_on"],
            cancellation=Cancellation(ends_on, CancellationMode.IMMEDIATE) if ends_on else None,
        ))
    return result



def rate_one(account: AccountContext, subscriptions: Sequence[Subscription],
             catalog: PlanCatalog, metrics: Sequence[Metric], events: Sequence[UsageEvent],
             period: Period) -> list[DraftInvoice]:
    """One domain draft per subscription due in ``period`` (rating errors propagate).

    A yearly subscription is due only in the run whose period starts its own period; its
    usage would span a year of events, which this stage does not stream (it streams the
    previous calendar month), so a due yearly plan with usage charges is refused, not guessed.
    """
    drafts = []
    for subscription in subscriptions:
        own = subscription.period_containing(period.start)
        if own.start != period.start:
            continue  # e.g. a yearly subscription in a month that does not open its year
        previous = subscription.previous_period(own)
        scope = usage_scope(subscription, catalog, previous)
        usage = None
        if scope is not None and scope.plan.usage_charges and previous.days > 31:
            raise ValueError(f"subscription {subscription.subscription_id}: usage charges of "
                             f"a {subscription.interval.value}ly plan are not billed by this "
                             "pipeline yet")
        if scope is not None:
            meter = UsageMeter(account.account_reference, scope, metrics)
            for event in events:
                if scope.start <= event.timestamp < scope.end:
                    meter.add(event)
            usage = meter.result()
        drafts.append(rate_account(account, subscription, catalog, own, usage))
    return drafts


def merge(account_id: int, billing_key: str, period: Period,
          drafts: Sequence[DraftInvoice]) -> StoredDraft:
    """One stored draft with the lines of every subscription, VAT recomputed over all."""
    first = drafts[0]
    lines: list[InvoiceLine] = []
    reasons: dict[VatCategory, str] = {}
    for draft in drafts:
        for line in draft.lines:
            lines.append(InvoiceLine(len(lines) + 1, line.description, line.quantity,
                                     line.unit_price, line.amount_minor, line.vat_category,
                                     line.vat_rate, line.unit_code, line.period_start,
                                     line.period_end))
        reasons.update({t.category: t.exemption_reason for t in draft.tax_subtotals
                        if t.exemption_reason})
    subtotals = tax_breakdown(lines, first.currency, reasons)
    excl, tax, incl = totals(subtotals)
    # The invoicing period (BT-73/74, last day inclusive) spans what the lines cover: the
    # fixed fees of this period and the usage of the previous one.
    starts = [line.period_start for line in lines if line.period_start]
    ends = [line.period_end for line in lines if line.period_end]
    first_day = min(starts, default=period.start)
    last_day = max(ends, default=period.end - timedelta(days=1))
    return StoredDraft(account_id, first.account_reference, billing_key, first.currency,
                       first.locale, first_day, last_day, lines, subtotals, excl, tax, incl)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
