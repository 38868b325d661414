"""Prepared statements return and write exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import delivery_ledger, invoices, outbox
from tests.support.scenario import build_scenario

# Typed columns of every kind the hot path reads: JSON, aware timestamps, decimals as text,
# integers, strings, NULLs.
_INVOICE = sa.select(invoices.c.id, invoices.c.number, invoices.c.buyer_snapshot,
                     invoices.c.seller_snapshot, invoices.c.issue_date,
                     invoices.c.total_incl_minor, invoices.c.finalized_at,
                     invoices.c.corrects_invoice_id).where(
    invoices.c.organization_id == sa.bindparam("org"), invoices.c.id == sa.bindparam("invoice"))


def test_reads_the_same_values_as_sqlalchemy(any_engine: Engine, tmp_path: Path) -> None:
    scenario = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    prepared = Prepared(_INVOICE)
    with any_engine.begin() as conn:
        for invoice_id in scenario.invoice_ids:
            params = {"org": scenario.org_id, "invoice": invoice_id}
            expected = conn.execute(_INVOICE, params).one()
            got = prepared.first(conn, params)
            assert tuple(got) == tuple(expected)
            assert got.buyer_snapshot == expected.buyer_snapshot  # by name, too
            assert got.finalized_at.tzinfo is not None
        assert prepared.first(conn, {"org": scenario.org_id, "invoice": -1}) is None


def test_writes_what_sqlalchemy_would_write(any_engine: Engine, tmp_path: Path) -> None:
    scenario = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    at = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    row = {"organization_id": scenario.org_id, "seq": 1, "message_id": "<m@x>", "run_id": None,
           "account_id": 1, "account_reference": "A0001", "invoice_id": scenario.invoice_ids[0],
           "invoice_number": "F-1", "recipients": [{"contact_id": 1, "email": "a@b.example"}],
           "data_categories": ["amount"], "attachment_sha256": "0" * 64,
           "body_sha256": "1" * 64, "queued_at": at, "sent_at": at, "prev_hash": "2" * 64,
           "row_hash": "3" * 64}
    insert = Prepared(sa.insert(delivery_ledger).values(
        {name: sa.bindparam(name) for name in row}))
    with any_engine.begin() as conn:
        assert insert.run(conn, row) == 1
        conn.execute(sa.insert(delivery_ledger), {**row, "seq": 2, "message_id": "<n@x>"})
        stored = conn.execute(sa.select(delivery_ledger).order_by(delivery_ledger.c.seq)).all()
    first, second = ({k: v for k, v in r._mapping.items() if k not in ("id", "seq",
                                                                       "message_id")}
                     for r in stored)
    assert first == second
    assert first["recipients"] == row["recipients"] and first["sent_at"] == at


def test_refuses_an_in_list_and_work_outside_a_transaction(any_engine: Engine) -> None:
    listed = Prepared(sa.select(outbox.c.id).where(
        outbox.c.id.in_(sa.bindparam("ids", expanding=True))))
    with any_engine.begin() as conn, pytest.raises(ValueError, match="IN list"):
        listed.rows(conn, {"ids": [1]})
    plain = Prepared(sa.select(outbox.c.id).where(outbox.c.id == sa.bindparam("id")))
    with any_engine.connect() as conn, pytest.raises(RuntimeError, match="transaction"):
        plain.rows(conn, {"id": 1})


def test_driver_errors_are_raised_as_sqlalchemy_raises_them(any_engine: Engine,
                                                           tmp_path: Path) -> None:
    """Callers tell a unique violation (the guard's rule 4 between two senders) and any database
    error (not a refused message) by SQLAlchemy's exception classes, whoever ran the
    statement."""
    scenario = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    at = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    row = {"organization_id": scenario.org_id, "seq": 1, "message_id": "<m@x>", "run_id": None,
           "account_id": 1, "account_reference": "A0001", "invoice_id": scenario.invoice_ids[0],
           "invoice_number": "F-1", "recipients": [], "data_categories": [],
           "attachment_sha256": "0" * 64, "body_sha256": "1" * 64, "queued_at": at,
           "sent_at": at, "prev_hash": "2" * 64, "row_hash": "3" * 64}
    insert = Prepared(sa.insert(delivery_ledger).values(
        {name: sa.bindparam(name) for name in row}))
    with any_engine.begin() as conn:
        insert.run(conn, row)
    for twice in (lambda c: insert.run(c, row), lambda c: insert.run_many(c, [row])):
        with any_engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
            twice(conn)
    broken = Prepared(sa.select(sa.text("no_such_column")).select_from(outbox))
    with any_engine.begin() as conn, pytest.raises(sa.exc.DBAPIError) as raised:
        broken.rows(conn, {})
    assert not isinstance(raised.value, sa.exc.IntegrityError)
