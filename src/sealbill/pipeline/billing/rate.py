"""Rate: stored rows of one account become domain objects, and the domain rates them.

Rating one account needs only that account's rows, so the billing stage streams accounts a
chunk at a time. Billing periods are calendar months: a subscription's billing anchor is the
1st of the month it started in. An account with several subscriptions gets one invoice with
the lines of all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.invoices import InvoiceLine, VatCategory, tax_breakdown, totals
from sealbill.domain.metering import measured_totals
from sealbill.domain.rating import (
    AccountContext,
    DraftInvoice,
    UsageMeter,
    UsageTotals,
    rate_account,
)
from sealbill.domain.subscriptions import (
    Cancellation,
    CancellationMode,
    Period,
    Phase,
    Subscription,
    UsageScope,
)
from sealbill.domain.taxes import VatContext
from sealbill.domain.usage import Aggregation, Levels, Metric, UsageEvent, carried_levels
from sealbill.domain.usage_windows import UsageSegment
from sealbill.pipeline.billing.rating_cache import ShapeCache, prepare
from sealbill.store.billing.invoices import DraftInvoice as StoredDraft
from sealbill.store.db import Row

if TYPE_CHECKING:
    from sealbill.pipeline.billing.usage_aggregates import MeasuredUsage


def previous_period(start: date) -> tuple[date, date]:
    year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    return date(year, month, 1), start


def account_context(row: Row, org: Row) -> AccountContext:
    vat = VatContext(row["country"], bool(row["is_business"]), bool(row["vat_id_valid"]),
                     org["country"])
    return AccountContext(row["reference"], row["currency"], row["locale"], vat)


def metrics_from_rows(rows: Mapping[str, Row]) -> list[Metric]:
    return [Metric(code, Aggregation(m["aggregation"]), m["field"], m.get("group_by"))
            for code, m in rows.items()]


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
             period: Period, carried: Sequence[UsageEvent] = (),
             measured: MeasuredUsage | None = None,
             shapes: ShapeCache | None = None) -> list[DraftInvoice]:
    """One domain draft per subscription with something due in ``period`` (rating errors
    propagate): its fixed fees when its own period opens with ``period`` (a yearly plan in its
    anniversary month), and the usage windows ending when ``period`` starts, on each charge's
    cadence (a yearly plan's usage every month by default).

    ``events``: the account's events of the loaded usage window, in timestamp order;
    ``carried``: the last event of each (metric, group) before that window, which sets the
    levels of time-weighted metrics until their first event; ``measured``: the account's
    usage aggregated by the database (``usage_aggregates.py``), metered instead of ``events``;
    ``shapes``: the run's :class:`ShapeCache` (``period`` must be its period), which gives
    the same drafts as without it."""
    by_code = {metric.code: metric for metric in metrics}
    drafts = []
    for subscription in subscriptions:
        found = (shapes.prepared(subscription) if shapes is not None
                 else prepare(subscription, catalog, period))
        if not found.fees_due and not found.segments:
            continue  # e.g. a yearly plan without usage charges in a month inside its year
        rated = [(segment, _meter(account, segment, by_code, events, carried, measured))
                 for segment in found.segments]
        drafts.append(rate_account(account, subscription, catalog,
                                   found.own if found.fees_due else period, rated,
                                   fees=found.fees_due, fee_lines=found.fee_lines))
    return drafts


def _meter(account: AccountContext, segment: UsageSegment, metrics: Mapping[str, Metric],
           events: Sequence[UsageEvent], carried: Sequence[UsageEvent],
           measured: MeasuredUsage | None = None) -> UsageTotals:
    scope = segment.scope
    levels = _levels_at(scope, metrics, events, carried)
    if measured is not None:
        codes = {charge.metric_code for charge in scope.plan.usage_charges}
        return measured_totals(scope, metrics.values(), measured.quantities(
            scope, [m for code, m in metrics.items() if code in codes], levels))
    meter = UsageMeter(account.account_reference, scope, metrics.values(), levels)
    for event in events:
        if scope.start <= event.timestamp < scope.end:
            meter.add(event)
    return meter.result()


def _levels_at(scope: UsageScope, metrics: Mapping[str, Metric], events: Sequence[UsageEvent],
               carried: Sequence[UsageEvent]) -> dict[str, Levels]:
    """Levels of the scope's time-weighted metrics at its start: the carried ones, updated by
    the events of the loaded window before the scope (earlier segments, a trial)."""
    levels: dict[str, Levels] = {}
    for charge in scope.plan.usage_charges:
        metric = metrics.get(charge.metric_code or "")
        if metric is None or metric.aggregation is not Aggregation.TIME_WEIGHTED_SUM:
            continue
        before = [e for e in (*carried, *events)
                  if e.metric_code == metric.code and e.timestamp < scope.start]
        levels[metric.code] = carried_levels(metric, before)
    return levels


def merge(account_id: int, billing_key: str, period: Period,
          drafts: Sequence[DraftInvoice], tax_facts: dict[str, Any] | None = None
          ) -> StoredDraft:
    """One stored draft with the lines of every subscription, VAT recomputed over all (one
    draft's own lines, numbered from 1, and its VAT are already that)."""
    first = drafts[0]
    lines: list[InvoiceLine] = []
    if len(drafts) == 1:
        lines = list(first.lines)
        subtotals = first.tax_subtotals
        excl, tax, incl = first.total_excl_minor, first.tax_total_minor, first.total_incl_minor
    else:
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
                       first.locale, first_day, last_day, lines, subtotals, excl, tax, incl,
                       tax_facts=tax_facts)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
