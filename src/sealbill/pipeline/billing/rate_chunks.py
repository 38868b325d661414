"""Rating chunks of accounts, in this process or in a pool of worker processes.

The billing stage reads a chunk (accounts, their subscription phases, their usage) from the
database and hands it here as plain data; rating is pure and CPU-bound, so with several cores
the chunks are rated in worker processes while the main process reads the next chunk and
writes the drafts of the previous one. Results come back in chunk order; at most
``workers + 1`` chunks are in flight, so memory stays flat.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.invoices import DocumentKind, tax_breakdown, totals
from sealbill.domain.rating import RatingError, ZeroAmountRule
from sealbill.domain.subscriptions import Period
from sealbill.domain.usage import Metric, UsageEvent
from sealbill.pipeline.billing.oss import candidate_facts
from sealbill.pipeline.billing.rate import account_context, merge, rate_one, subscriptions_from_rows
from sealbill.pipeline.billing.rating_cache import ShapeCache
from sealbill.pipeline.billing.usage_aggregates import MeasuredUsage
from sealbill.store.billing.invoices import DraftInvoice
from sealbill.store.billing.usage import event_fields

POOL_MIN_CHUNKS = 3  # below this, starting workers costs more than it saves


@dataclass(frozen=True)
class RatingContext:
    """What every chunk of one run is rated with (sent to each worker once)."""

    org: dict[str, Any]
    catalog: PlanCatalog
    metrics: list[Metric]
    start: date
    end: date
    period: str
    #: what rating derives from each subscription shape, kept for the run in each process
    shapes: ShapeCache = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", ShapeCache(self.catalog, Period(self.start, self.end)))


@dataclass
class ChunkInput:
    accounts: list[dict[str, Any]]
    phases: dict[int, list[dict[str, Any]]]
    # account id -> (event_id, metric_code, occurred_at, value, properties) as the driver
    # returned them (see store.usage.stream_period_raw)
    events: dict[int, list[tuple[Any, ...]]]
    # account id -> the last event of each (time-weighted metric, group) before the window,
    # in the same shape (see store.usage.carried_events_raw)
    carried: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict)
    # account id -> its usage aggregated by the database (then no events above)
    measured: dict[int, MeasuredUsage] = field(default_factory=dict)


@dataclass
class ChunkOutput:
    accounts: int
    drafts: list[DraftInvoice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped_zero: int = 0


def rate_chunk(job: ChunkInput, ctx: RatingContext) -> ChunkOutput:
    out = ChunkOutput(len(job.accounts))
    rule = ZeroAmountRule(ctx.org["zero_amount_rule"])
    period = Period(ctx.start, ctx.end)
    for row in job.accounts:
        account_id, reference = int(row["id"]), row["reference"]
        events = _events(reference, job.events.get(account_id, ()))
        carried = _events(reference, job.carried.get(account_id, ()))
        try:
            subscriptions = subscriptions_from_rows(reference, job.phases.get(account_id, []),
                                                    ctx.catalog)
            rated = rate_one(account_context(row, ctx.org), subscriptions, ctx.catalog,
                             ctx.metrics, events, period, carried,
                             job.measured.get(account_id), ctx.shapes)
        except (RatingError, ValueError, LookupError) as exc:
            out.problems.append(f"account {reference}: {exc}")
            continue
        if not rated:
            out.skipped_zero += 1
            continue
        draft = merge(account_id, f"{account_id}:{ctx.period}", period, rated,
                      candidate_facts(row))
        if draft.total_incl_minor < 0:
            out.drafts.append(as_credit_note(draft))  # e.g. after an immediate cancellation
        elif not draft.lines or (draft.total_incl_minor == 0 and rule is ZeroAmountRule.SKIP):
            out.skipped_zero += 1
        else:
            out.drafts.append(draft)
    return out


def _events(reference: str, rows: Iterable[tuple[Any, ...]]) -> list[UsageEvent]:
    return [UsageEvent(e[0], reference, e[1], *event_fields(e[2], e[3], e[4])) for e in rows]


def as_credit_note(draft: DraftInvoice) -> DraftInvoice:
    """A period whose credits exceed its charges becomes a credit note: the same lines with
    the sign turned (EN 16931 credit notes carry positive totals), VAT recomputed. The billing
    stage then points it at the account's last invoice (``corrects_invoice_id``)."""
    lines = [replace(line, quantity=-line.quantity, amount_minor=-line.amount_minor)
             for line in draft.lines]
    reasons = {t.category: t.exemption_reason for t in draft.tax_subtotals
               if t.exemption_reason}
    subtotals = tax_breakdown(lines, draft.currency, reasons)
    excl, tax, incl = totals(subtotals)
    return replace(draft, kind=DocumentKind.CREDIT_NOTE, lines=lines, tax_subtotals=subtotals,
                   total_excl_minor=excl, tax_total_minor=tax, total_incl_minor=incl)


_WORKER_CONTEXT: RatingContext | None = None


def _init_worker(ctx: RatingContext) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = ctx


def _rate_in_worker(job: ChunkInput) -> ChunkOutput:
    assert _WORKER_CONTEXT is not None, "worker started without its rating context"
    return rate_chunk(job, _WORKER_CONTEXT)


def rated_chunks(jobs: Iterator[ChunkInput], ctx: RatingContext, *, expected_chunks: int,
                 workers: int | None = None) -> Iterator[ChunkOutput]:
    """Rate ``jobs`` in order; in worker processes when there is enough work for them."""
    workers = workers or os.cpu_count() or 1
    if workers < 2 or expected_chunks < POOL_MIN_CHUNKS:
        for job in jobs:
            yield rate_chunk(job, ctx)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(ctx,)) as pool:
        pending: deque[Future[ChunkOutput]] = deque()
        for job in jobs:
            pending.append(pool.submit(_rate_in_worker, job))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
