"""A batch of ledger rows appended in one transaction is the chain one-at-a-time appends make.

``ledger.append_many`` (one lock, one read of the head, one INSERT for a sender's batch) must
leave exactly the rows ``ledger.append`` leaves when called once per entry: same seq, same
prev_hash → row_hash links, same seals, one checkpoint at the end that ``ledger verify``
accepts; a batch rolled back leaves nothing, and the chain goes on from the head before it.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.delivery import ledger
from sealbill.store.schema import delivery_ledger
from tests.integration.incident.world import World, create_org

CONTENT = [c for c in ledger.CONTENT_FIELDS
           if c not in ("organization_id", "account_id", "prev_hash")]


def _entries(account_id: int, start: int, count: int) -> list[ledger.LedgerEntry]:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    return [ledger.LedgerEntry(
        message_id=f"<inv-{i}@acme.test>", run_id=None, account_id=account_id,
        account_reference="ACC-1", invoice_id=1000 + i, invoice_number=f"F2026-{i:05d}",
        recipients=[{"contact_id": None, "email": f"x{i}@client.test"}],
        data_categories=["name", "amount", "invoice"], attachment_sha256=f"{i:064x}",
        body_sha256=f"{i + 1:064x}", queued_at=at, sent_at=at + timedelta(seconds=i),
        part=1 + i % 2, document_kind="invoice") for i in range(start, start + count)]


def _world(engine: Engine, slug: str) -> World:
    with engine.begin() as conn:
        world = World(engine, create_org(conn, slug))
    world.account("ACC-1")
    return world


def _rows(engine: Engine, org_id: int) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(delivery_ledger).where(delivery_ledger.c.organization_id == org_id)
            .order_by(delivery_ledger.c.seq))]


def test_a_batch_appends_the_chain_single_appends_make(any_engine: Engine) -> None:
    one, many = _world(any_engine, "one"), _world(any_engine, "many")
    # the same entries: one chain built one append (and one transaction) at a time, the
    # other as 2 singles, a batch of 5 in one transaction, then a single
    for entry in _entries(one.accounts["ACC-1"], 0, 8):
        with any_engine.begin() as conn:
            ledger.append(conn, one.org_id, entry)
    entries = _entries(many.accounts["ACC-1"], 0, 8)
    with any_engine.begin() as conn:
        ledger.append(conn, many.org_id, entries[0])
    with any_engine.begin() as conn:
        ledger.append(conn, many.org_id, entries[1])
    with any_engine.begin() as conn:
        assert ledger.append_many(conn, many.org_id, entries[2:7]) == [3, 4, 5, 6, 7]
    with any_engine.begin() as conn:
        assert ledger.append(conn, many.org_id, entries[7]) == 8

    singles, batched = _rows(any_engine, one.org_id), _rows(any_engine, many.org_id)
    assert [r["seq"] for r in batched] == list(range(1, 9))
    assert [{k: r[k] for k in CONTENT} for r in batched] == \
        [{k: r[k] for k in CONTENT} for r in singles]
    assert batched[0]["prev_hash"] == ledger.GENESIS
    assert all(b["prev_hash"] == a["row_hash"] for a, b in itertools.pairwise(batched))
    with any_engine.begin() as conn:
        for world in (one, many):
            report = ledger.verify(conn, world.org_id)
            assert report.ok and report.rows == 8, report.problems


def test_a_batch_rolled_back_leaves_nothing_and_the_chain_goes_on(any_engine: Engine) -> None:
    world = _world(any_engine, "acme")
    entries = _entries(world.accounts["ACC-1"], 0, 6)
    with any_engine.begin() as conn:
        ledger.append_many(conn, world.org_id, entries[:2])
    with pytest.raises(RuntimeError), any_engine.begin() as conn:
        ledger.append_many(conn, world.org_id, entries[2:5])
        raise RuntimeError("the batch's transaction fails after the appends")
    assert len(_rows(any_engine, world.org_id)) == 2
    with any_engine.begin() as conn:
        assert ledger.append_many(conn, world.org_id, entries[2:6]) == [3, 4, 5, 6]
        assert ledger.append_many(conn, world.org_id, []) == []
    with any_engine.begin() as conn:
        report = ledger.verify(conn, world.org_id)
    assert report.ok and report.rows == 6, report.problems


def test_an_edited_row_in_a_batch_is_reported(any_engine: Engine) -> None:
    world = _world(any_engine, "acme")
    with any_engine.begin() as conn:
        ledger.append_many(conn, world.org_id, _entries(world.accounts["ACC-1"], 0, 4))
    with any_engine.begin() as conn:
        conn.execute(sa.update(delivery_ledger).where(
            delivery_ledger.c.organization_id == world.org_id, delivery_ledger.c.seq == 3)
            .values(invoice_number="F2026-99999"))
        report = ledger.verify(conn, world.org_id)
    assert [(p["seq"], p["problem"]) for p in report.problems] == [(3, "edited")]
