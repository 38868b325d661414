"""Rate and invoice: one draft invoice per account per period, streamed in chunks.

Invariants:
- a run is drafted in one transaction: it exists whole or not at all;
- a rerun of the same period skips every account that already has a document for it — an
  invoice or the credit note a period with more credits than charges produced
  (``billing_key`` = ``<account id>:<period>``, unique per organization), so it never bills
  twice — even if two runs race, the unique constraint refuses the second insert;
- a dry run goes through the same rating code, returns what the real run would draft, and
  writes nothing;
- an account that cannot be rated (a subscription on a plan with no price in effect, a plan
  whose interval sealbill does not bill, a credit with no invoice to correct) is reported in
  ``BillingResult.problems`` with the reason and left unbilled; the other accounts are billed.
  A rerun after the fix bills it (its billing key is still free);
- memory stays flat: accounts, their phases and their usage are read one chunk at a time;
- the manual credit notes waiting for a run (``store/billing/credit_delivery.py``) are taken into
this
  run, to be rendered, planned and mailed with it; a dry run lists them and takes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.catalog import Interval, PlanCatalog
from sealbill.domain.invoices import DocumentKind, plain_rate
from sealbill.domain.subscriptions import Period
from sealbill.domain.usage import Aggregation
from sealbill.domain.usage_windows import usage_window_start
from sealbill.pipeline.billing.oss import apply_oss, year_totals
from sealbill.pipeline.billing.rate import metrics_from_rows, midnight, previous_period
from sealbill.pipeline.billing.rate_chunks import ChunkInput, RatingContext, rated_chunks
from sealbill.pipeline.billing.usage_aggregates import (
    AggregatePlan,
    MeasuredUsage,
    measure_chunk,
)
from sealbill.store import stage_events
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing import credit_delivery
from sealbill.store.billing.invoices import (
    DraftInvoice,
    billed_account_ids,
    insert_drafts,
    last_invoice_ids,
)
from sealbill.store.billing.usage import carried_events_raw, stream_period_raw
from sealbill.store.db import Row, inserted_id
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts, billing_runs

CHUNK = 1000
log = logging.getLogger(__name__)


class BillingError(ValueError):
    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class BillingResult:
    run_id: int | None
    period: str
    drafted: int = 0
    already_billed: int = 0
    skipped_zero: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    previews: list[dict[str, Any]] = field(default_factory=list)
    #: One line per account left unbilled, naming it and the reason.
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: Manual credit notes issued since the last planned run, that this run delivers.
    credit_notes_to_deliver: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.problems, "run_id": self.run_id, "period": self.period,
                "drafted": self.drafted, "already_billed": self.already_billed,
                "skipped_zero": self.skipped_zero, "not_billed": len(self.problems),
                "problems": self.problems, "totals_incl_minor": self.totals,
                "dry_run": self.dry_run, "previews": self.previews,
                "credit_notes_to_deliver": self.credit_notes_to_deliver}


def period_bounds(period: str) -> tuple[date, date]:
    """``2026-10`` -> (2026-10-01, 2026-11-01), the end exclusive."""
    try:
        year, month = (int(part) for part in period.split("-"))
        start = date(year, month, 1)
    except ValueError:
        raise BillingError(f"period: expected YYYY-MM, got {period!r}") from None
    end = date(year + month // 12, month % 12 + 1, 1)
    return start, end


def open_run(conn: Connection, org_id: int, period: str, start: date, end: date,
             actor: str) -> int:
    found = conn.execute(sa.select(billing_runs.c.id).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.period == period)).scalar()
    if found is not None:
        return int(found)
    return inserted_id(conn.execute(sa.insert(billing_runs).values(
        organization_id=org_id, period=period, period_start=start, period_end=end,
        status="drafted", started_by=actor, created_at=datetime.now(UTC),
    )))


def bill_period(engine: Engine, org_id: int, period: str, *, actor: str,
                dry_run: bool = False, workers: int | None = None,
                on_progress: Callable[[int], None] | None = None) -> BillingResult:
    start, end = period_bounds(period)
    with engine.begin() as conn:
        org = dict(parties.organization(conn, org_id))
        catalog = catalog_store.load_catalog(conn, org_id)
        metric_rows = catalog_store.load_metrics(conn, org_id)
        problems = catalog.problems(set(metric_rows))
        if problems:
            raise BillingError("the price catalog has problems; nothing was billed", problems)
        run_id = None if dry_run else open_run(conn, org_id, period, start, end, actor)
        result = BillingResult(run_id, period, dry_run=dry_run)
        oss_year = year_totals(conn, org_id, start.year, bool(org.get("oss_opt_in")))
        at = datetime.now(UTC)
        # Read once, before this run inserts anything: the unique billing key still refuses a
        # second invoice if another run bills the same account meanwhile.
        billed = billed_account_ids(conn, org_id, period)
        ctx = RatingContext(org, catalog, metrics_from_rows(metric_rows), start, end, period)
        window = LoadWindow.of(catalog, metric_rows, start, end)
        jobs = (_load_chunk(conn, org_id, chunk, start, end, billed, result, window)
                for chunk in _account_chunks(conn, org_id, start))
        expected = -(-_account_count(conn, org_id, start) // CHUNK)
        for rated in rated_chunks(jobs, ctx, expected_chunks=expected, workers=workers):
            result.problems.extend(rated.problems)
            result.skipped_zero += rated.skipped_zero
            drafts = apply_oss(conn, org_id, oss_year, start, rated.drafts, result.problems)
            _record(conn, org_id, run_id, drafts, at, result, dry_run)
            if on_progress:
                on_progress(rated.accounts)
        # manual credit notes waiting for a run are delivered by this one (credit_delivery)
        result.credit_notes_to_deliver = credit_delivery.would_take(conn, org_id, period) \
            if run_id is None else credit_delivery.take_waiting(conn, org_id, run_id)
        if run_id is not None:  # the run's audit entry commits with its drafts
            stage_events.publish(conn, org_id, stage_events.RUN_BILLED, {
                "run_id": run_id, "period": period, "drafted": result.drafted,
                "already_billed": result.already_billed,
                "skipped_zero": result.skipped_zero, "problems": len(result.problems),
                "totals": dict(result.totals)})
        for problem in result.problems:
            log.warning("account not billed", extra={"fields": {
                "stage": "rate", "run_id": run_id, "problem": problem}})
    return result


def _record(conn: Connection, org_id: int, run_id: int | None, drafts: list[DraftInvoice],
            at: datetime, result: BillingResult, dry_run: bool) -> None:
    """Store (or preview) a chunk's drafts; an unattachable credit note is a problem."""
    drafts, problems = _attach_credit_notes(conn, org_id, drafts)
    result.problems.extend(problems)
    if dry_run:
        result.previews.extend(_preview(d) for d in drafts)
    else:
        insert_drafts(conn, org_id, run_id, drafts, at)
    for draft in drafts:
        result.totals[draft.currency] = result.totals.get(draft.currency, 0) \
            + draft.total_incl_minor
    result.drafted += len(drafts)
    log.info("rated a chunk of accounts", extra={"fields": {
        "stage": "rate", "run_id": run_id, "drafted": len(drafts)}})


def _attach_credit_notes(conn: Connection, org_id: int, drafts: list[DraftInvoice]
                         ) -> tuple[list[DraftInvoice], list[str]]:
    """Point each credit note at its account's last finalized invoice (BT-25)."""
    credits = [d for d in drafts if d.kind is DocumentKind.CREDIT_NOTE]
    if not credits:
        return drafts, []
    last = last_invoice_ids(conn, org_id, [d.account_id for d in credits])
    problems = [f"account {d.account_reference}: credits exceed charges but there is no "
                "finalized invoice to credit" for d in credits if d.account_id not in last]
    return [replace(d, corrects_invoice_id=last[d.account_id])
            if d.kind is DocumentKind.CREDIT_NOTE else d
            for d in drafts if d.kind is not DocumentKind.CREDIT_NOTE or d.account_id in last
            ], problems


def _billable(start: date) -> sa.ColumnElement[bool]:
    """An account is billed for a period unless it was archived before the period began (one
    archived during the period gets its last invoice for it)."""
    return sa.or_(accounts.c.archived_at.is_(None),
                  accounts.c.archived_at >= midnight(start))


def account_count(engine: Engine, org_id: int, period: str) -> int:
    """How many accounts a billing run of the organization goes through (its progress)."""
    start, _ = period_bounds(period)
    with engine.begin() as conn:
        return _account_count(conn, org_id, start)


def _account_count(conn: Connection, org_id: int, start: date) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(accounts).where(
        accounts.c.organization_id == org_id, _billable(start))).scalar_one())


def _account_chunks(conn: Connection, org_id: int, start: date) -> Iterator[list[Row]]:
    last_id = 0
    while True:
        rows = conn.execute(sa.select(accounts).where(
            accounts.c.organization_id == org_id, accounts.c.id > last_id, _billable(start),
        ).order_by(accounts.c.id).limit(CHUNK)).all()
        if not rows:
            return
        last_id = rows[-1].id
        yield [row._mapping for row in rows]


@dataclass(frozen=True)
class LoadWindow:
    """What a run reads besides accounts: phases from ``phases_from`` (the previous period of
    a yearly plan starts a year back: its changes are prorated now), usage from
    ``first_day``, and the last level before it of the time-weighted metrics (code ->
    grouping property)."""

    first_day: date
    time_weighted: dict[str, str | None]
    phases_from: date
    #: which accounts are rated from aggregates (None: every account from its events)
    aggregates: AggregatePlan | None = None

    @classmethod
    def of(cls, catalog: PlanCatalog, metric_rows: Mapping[str, Row], start: date,
           end: date) -> LoadWindow:
        yearly = any(c.usage_cadence is not Interval.MONTH for code in catalog.codes()
                     for plan in catalog.versions(code) for c in plan.usage_charges)
        tws = {code: row.get("group_by") for code, row in metric_rows.items()
               if row["aggregation"] == Aggregation.TIME_WEIGHTED_SUM.value}
        yearly_plans = any(plan.interval is not Interval.MONTH for code in catalog.codes()
                           for plan in catalog.versions(code))
        period = Period(start, end)
        first_day = usage_window_start(period, yearly)
        return cls(first_day, tws, usage_window_start(period, yearly_plans),
                   AggregatePlan.of(catalog, metrics_from_rows(metric_rows), period, first_day))


def _load_chunk(conn: Connection, org_id: int, chunk: list[Row], start: date, end: date,
                billed: set[int], result: BillingResult, window: LoadWindow) -> ChunkInput:
    """The chunk's accounts still to bill, their phases and their usage, as plain data."""
    todo = [dict(row) for row in chunk if int(row["id"]) not in billed]
    result.already_billed += len(chunk) - len(todo)
    ids = [int(row["id"]) for row in todo]
    if not ids:
        return ChunkInput([], {}, {})
    # Phases of the previous period too: its changes are prorated on this invoice; and of
    # the usage windows billed now (a year back when a charge is billed yearly).
    phases = catalog_store.phases_by_account(
        conn, org_id, ids, min(previous_period(start)[0], window.first_day,
                               window.phases_from), end)
    # Usage is billed in arrears: this run's invoice carries the windows ending at its start.
    usage_start, usage_end = midnight(window.first_day), midnight(start)
    measured = _measure(conn, org_id, todo, phases, window.aggregates)
    events: dict[int, list[tuple[Any, ...]]] = {}
    for row in stream_period_raw(conn, org_id, usage_start, usage_end,
                                 [i for i in ids if i not in measured]):
        # (account_id, event_id, metric_code, occurred_at, value, properties)
        events.setdefault(row[0], []).append(row[1:])
    carried: dict[int, list[tuple[Any, ...]]] = {}
    for row in carried_events_raw(conn, org_id, usage_start, ids, window.time_weighted):
        carried.setdefault(row[0], []).append(row[1:])
    return ChunkInput(todo, {k: [dict(r) for r in v] for k, v in phases.items()}, events,
                      carried, measured)


def _measure(conn: Connection, org_id: int, todo: list[dict[str, Any]],
             phases: Mapping[int, list[Row]], plan: AggregatePlan | None
             ) -> dict[int, MeasuredUsage]:
    """The usage of the chunk's accounts that the database aggregates (usage_aggregates)."""
    if plan is None:
        return {}
    wanted = {}
    for row in todo:
        codes = plan.metrics_of(row["reference"], phases.get(int(row["id"]), []))
        if codes is not None:
            wanted[int(row["id"])] = codes
    return measure_chunk(conn, org_id, plan, wanted)


def _preview(draft: DraftInvoice) -> dict[str, Any]:
    return {
        "account_reference": draft.account_reference, "kind": draft.kind.value,
        "currency": draft.currency,
        "total_excl_minor": draft.total_excl_minor, "tax_total_minor": draft.tax_total_minor,
        "total_incl_minor": draft.total_incl_minor, "tax_facts": draft.tax_facts,
        "lines": [{"description": line.description, "quantity": str(line.quantity),
                   "unit_price": str(line.unit_price), "amount_minor": line.amount_minor,
                   "vat": f"{line.vat_category.value} {plain_rate(line.vat_rate)}"}
                  for line in draft.lines],
    }
