"""Finalize: drafts become immutable, numbered invoices; corrections become credit notes.

Each chunk of drafts is finalized in its own transaction, holding the series lock only for
that chunk: numbers stay gapless (a chunk commits consecutive numbers or none) and several
finalizers can work at once, each waiting its turn on the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.invoices import DocumentKind, InvoiceLine, tax_breakdown, totals
from sealbill.domain.money import document_step, to_major
from sealbill.store import stage_events
from sealbill.store.billing import credit_delivery
from sealbill.store.billing import invoices as invoice_store
from sealbill.store.schema import billing_runs, invoices

CHUNK = 1000


def draft_ids(conn: Connection, org_id: int, run_id: int) -> list[int]:
    return [int(i) for i in conn.execute(
        sa.select(invoices.c.id).where(invoices.c.organization_id == org_id,
                                       invoices.c.run_id == run_id,
                                       invoices.c.status == "draft")
        .order_by(invoices.c.account_reference, invoices.c.id)
    ).scalars()]


def finalize_run(engine: Engine, org_id: int, run_id: int, *, issue_date: date | None = None,
                 on_progress: Callable[[int], None] | None = None) -> list[tuple[int, str]]:
    """Finalize every draft of the run; safe to rerun after an interruption."""
    issue_date = issue_date or datetime.now(UTC).date()
    with engine.begin() as conn:
        _require_run(conn, org_id, run_id)
        ids = draft_ids(conn, org_id, run_id)
        # Every missing exchange rate is reported before anything is numbered.
        invoice_store.require_exchange_rates(conn, org_id, run_id, issue_date)
    done: list[tuple[int, str]] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        with engine.begin() as conn:
            numbered = invoice_store.finalize(conn, org_id, chunk, issue_date=issue_date,
                                              at=datetime.now(UTC))
            stage_events.publish(conn, org_id, stage_events.INVOICES_FINALIZED, {
                "run_id": run_id, "invoice_ids": [invoice_id for invoice_id, _ in numbered]})
            done.extend(numbered)
        if on_progress:
            on_progress(len(chunk))
    with engine.begin() as conn:
        remaining = draft_ids(conn, org_id, run_id)
        if not remaining and conn.execute(sa.update(billing_runs).where(
                billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id,
                billing_runs.c.status == "drafted",
        ).values(status="finalized", finalized_at=datetime.now(UTC))).rowcount:
            stage_events.publish(conn, org_id, stage_events.RUN_STATUS,
                                 {"run_id": run_id, "status": "finalized", "reason": None})
    return done


def _require_run(conn: Connection, org_id: int, run_id: int) -> None:
    found = conn.execute(sa.select(billing_runs.c.id).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id)).first()
    if found is None:
        raise LookupError(f"billing run {run_id} not found")


def issue_credit_note(engine: Engine, org_id: int, invoice_number: str, *,
                      reason: str, amount_minor: int | None = None,
                      issue_date: date | None = None) -> tuple[int, str]:
    """A numbered credit note against a finalized invoice: in full, or for ``amount_minor``
    excluding VAT (then one line at the invoice's main VAT rate). It is mailed by the run
    :func:`sealbill.store.billing.credit_delivery.delivering_run` gives it."""
    with engine.begin() as conn:
        return credit_note_in(conn, org_id, invoice_number, reason=reason,
                              amount_minor=amount_minor,
                              issue_date=issue_date or datetime.now(UTC).date())


def credit_note_in(conn: Connection, org_id: int, invoice_number: str, *, reason: str,
                   amount_minor: int | None, issue_date: date) -> tuple[int, str]:
    """:func:`issue_credit_note` inside the caller's transaction."""
    row = conn.execute(sa.select(invoices).where(
        invoices.c.organization_id == org_id, invoices.c.number == invoice_number,
        invoices.c.kind == "invoice")).first()
    if row is None:
        raise LookupError(f"invoice {invoice_number!r} not found")
    if row.status != "finalized":
        raise invoice_store.InvoiceStateError(
            f"invoice {invoice_number}: only a finalized invoice can be credited "
            f"(status is {row.status})")
    original = invoice_store.load_invoice(conn, org_id, row.id)
    lines = _credit_lines(original.lines, original.currency, reason, amount_minor)
    credited = _credited_so_far(conn, org_id, row.id)
    if credited + sum(line.amount_minor for line in lines) > original.total_excl_minor:
        raise invoice_store.InvoiceStateError(
            f"invoice {invoice_number}: credit would exceed the invoice "
            f"({credited} already credited of {original.total_excl_minor})")
    subtotals = tax_breakdown(lines, original.currency,
                              {t.category: t.exemption_reason or ""
                               for t in original.tax_subtotals if t.exemption_reason})
    excl, tax, incl = totals(subtotals)
    count = conn.execute(sa.select(sa.func.count()).where(
        invoices.c.organization_id == org_id,
        invoices.c.corrects_invoice_id == row.id)).scalar_one()
    draft = invoice_store.DraftInvoice(
        account_id=row.account_id, account_reference=row.account_reference,
        billing_key=f"credit:{row.id}:{count + 1}", currency=original.currency,
        locale=original.locale, period_start=row.period_start, period_end=row.period_end,
        lines=lines, tax_subtotals=subtotals, total_excl_minor=excl, tax_total_minor=tax,
        total_incl_minor=incl, kind=DocumentKind.CREDIT_NOTE, corrects_invoice_id=row.id,
        oss_eur_minor=None if row.oss_eur_minor is None else 0,
        tax_facts=_credit_facts(row.tax_facts, invoice_number))
    at = datetime.now(UTC)
    # delivered by the corrected invoice's run if not planned yet, else by a later run
    run_id = credit_delivery.delivering_run(conn, org_id, row.run_id)
    [credit_id] = invoice_store.insert_drafts(conn, org_id, run_id, [draft], at)
    [(_, number)] = invoice_store.finalize(conn, org_id, [credit_id],
                                           issue_date=issue_date, at=at)
    return credit_id, number


def _credit_facts(facts: dict[str, Any] | None, invoice_number: str) -> dict[str, Any] | None:
    """The corrected invoice's tax facts (OSS scheme, country, evidence), so the credit note
    is taxed, rendered and reported like it: the OSS return deducts it in the quarter of the
    credit note's own issue date. A credit adds nothing to the OSS threshold (0 counted)."""
    return None if facts is None else {**facts, "corrects": invoice_number}


def _credited_so_far(conn: Connection, org_id: int, invoice_id: int) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(
        invoices.c.total_excl_minor), 0)).where(
        invoices.c.organization_id == org_id, invoices.c.corrects_invoice_id == invoice_id,
        invoices.c.status == "finalized")).scalar_one())


def _credit_lines(lines: tuple[InvoiceLine, ...], currency: str, reason: str,
                  amount_minor: int | None) -> list[InvoiceLine]:
    if amount_minor is None:
        return list(lines)
    if amount_minor <= 0:
        raise ValueError("amount: a credit note amount must be positive")
    if amount_minor % document_step(currency):
        raise ValueError(f"amount: a {currency} invoice amount has at most 2 decimals")
    main = max(lines, key=lambda line: line.amount_minor)
    return [InvoiceLine(1, reason, Decimal(1), to_major(amount_minor, currency),
                        amount_minor, main.vat_category, main.vat_rate)]


def void_invoice(engine: Engine, org_id: int, invoice_number: str, *,
                 reason: str) -> tuple[int, str]:
    """Void a finalized invoice: a full credit note is issued and the invoice marked void."""
    with engine.begin() as conn:
        credit = credit_note_in(conn, org_id, invoice_number, reason=reason, amount_minor=None,
                                issue_date=datetime.now(UTC).date())
        conn.execute(sa.update(invoices).where(
            invoices.c.organization_id == org_id, invoices.c.number == invoice_number,
            invoices.c.status == "finalized",
        ).values(status="void", voided_at=datetime.now(UTC), void_reason=reason))
    return credit
