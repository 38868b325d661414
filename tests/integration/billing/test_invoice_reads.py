"""Invoices read a chunk at a time are the very objects the one-at-a-time read gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.pipeline.billing.finalize import issue_credit_note
from sealbill.store.billing.invoice_reads import InvoiceStateError, load_invoices, stream_invoices
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties.records import NotFound
from sealbill.store.schema import invoices
from tests.support.scenario import build_scenario


def test_a_chunk_read_equals_the_single_reads_in_the_order_asked(any_engine: Engine,
                                                                  tmp_path: Path) -> None:
    scenario = build_scenario(any_engine, accounts=5, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        first = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.id == scenario.invoice_ids[0])).scalar_one()
    credit_id, _ = issue_credit_note(any_engine, scenario.org_id, first, reason="refund",
                                     amount_minor=100)
    ids = [credit_id, *reversed(scenario.invoice_ids)]
    with any_engine.begin() as conn:
        single = [load_invoice(conn, scenario.org_id, i) for i in ids]
        chunk = load_invoices(conn, scenario.org_id, ids)
    assert chunk == single
    assert chunk[0].corrected_invoice_number == first and all(i.lines for i in chunk)
    streamed = [i for _, part in stream_invoices(any_engine, scenario.org_id, ids, chunk=2)
                for i in part]
    assert streamed == single


def test_a_chunk_with_a_missing_or_draft_invoice_is_refused(sqlite_engine: Engine,
                                                            tmp_path: Path) -> None:
    scenario = build_scenario(sqlite_engine, accounts=2, files_dir=tmp_path, render=False)
    with sqlite_engine.begin() as conn:
        with pytest.raises(NotFound, match="invoice 999999 not found"):
            load_invoices(conn, scenario.org_id, [scenario.invoice_ids[0], 999999])
        with pytest.raises(NotFound):  # another organization's invoice is not found either
            load_invoices(conn, scenario.org_id + 1, scenario.invoice_ids[:1])
        conn.execute(sa.update(invoices).where(invoices.c.id == scenario.invoice_ids[1])
                     .values(status="draft"))
        with pytest.raises(InvoiceStateError, match="is a draft"):
            load_invoices(conn, scenario.org_id, scenario.invoice_ids)
