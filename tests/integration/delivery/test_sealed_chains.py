"""The contact history and the delivery ledger: sealed hash chains with checkpoints outside
the database. Each way a database writer could rewrite them is reported, on SQLite and
PostgreSQL; after a real send both verify clean."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.domain.seals import event_hash
from sealbill.store.delivery import ledger
from sealbill.store.parties import contact_log
from sealbill.store.schema import contact_events, delivery_ledger, outbox
from tests.integration.delivery.conftest import World


@pytest.fixture(params=["world", "pg_world"])
def sent(request: pytest.FixtureRequest) -> World:
    world: World = request.getfixturevalue(request.param)
    world.plan()
    report = world.send()
    assert report.status == "sent", report
    return world


def log_problems(world: World) -> set[str]:
    with world.engine.begin() as conn:
        return {p["problem"] for p in contact_log.verify(conn, world.org_id).problems}


def ledger_problems(world: World) -> set[str]:
    with world.engine.begin() as conn:
        return {p["problem"] for p in ledger.verify(conn, world.org_id).problems}


def events(world: World) -> list[Any]:
    with world.engine.begin() as conn:
        return list(conn.execute(sa.select(contact_events).where(
            contact_events.c.organization_id == world.org_id).order_by(contact_events.c.seq)))


def test_both_chains_verify_after_a_real_send(sent: World) -> None:
    assert log_problems(sent) == set() and ledger_problems(sent) == set()


def test_an_edited_event_is_reported_and_so_is_one_re_hashed(sent: World) -> None:
    row = events(sent)[2]
    with sent.engine.begin() as conn:
        conn.execute(sa.update(contact_events).where(contact_events.c.id == row.id)
                     .values(new_value="attacker@evil-corp.com"))
    assert "edited" in log_problems(sent)
    rehashed = {**row._mapping, "new_value": "attacker@evil-corp.com"}
    with sent.engine.begin() as conn:
        conn.execute(sa.update(contact_events).where(contact_events.c.id == row.id)
                     .values(row_hash=event_hash(rehashed)))
    assert "forged" in log_problems(sent)


def test_events_written_around_sealbill_deleted_or_reinserted_are_reported(
        sent: World) -> None:
    rows = events(sent)
    with sent.engine.begin() as conn:
        conn.execute(sa.insert(contact_events).values(
            organization_id=sent.org_id, contact_id=rows[0].contact_id, event="verified",
            actor="migration", at=rows[0].at))
        conn.execute(sa.delete(contact_events).where(contact_events.c.id == rows[3].id))
        values = {k: v for k, v in rows[1]._mapping.items() if k != "id"}
        conn.execute(sa.delete(contact_events).where(contact_events.c.id == rows[1].id))
        conn.execute(sa.insert(contact_events).values(**values))
    assert {"unchained", "deleted", "chain broken", "re-inserted"} <= log_problems(sent)


def test_a_history_cut_at_its_tail_is_reported_from_the_checkpoints(sent: World) -> None:
    last = events(sent)[-2:]
    with sent.engine.begin() as conn:
        conn.execute(sa.delete(contact_events).where(
            contact_events.c.id.in_([r.id for r in last])))
    assert log_problems(sent) == {"truncated"}


def test_a_ledger_row_edited_and_its_chain_recomputed_is_reported(sent: World) -> None:
    with sent.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(delivery_ledger).where(
            delivery_ledger.c.organization_id == sent.org_id).order_by(delivery_ledger.c.seq))]
        rows[0]["recipients"] = [{"contact_id": 1, "email": "someone-else@client.example"}]
        prev = ledger.GENESIS
        for row in rows:  # recompute every hash after the edit, as a careful forger would
            row["prev_hash"] = prev
            row["row_hash"] = prev = ledger.row_hash(row)
            conn.execute(sa.update(delivery_ledger).where(delivery_ledger.c.id == row["id"])
                         .values(recipients=row["recipients"], prev_hash=row["prev_hash"],
                                 row_hash=row["row_hash"]))
    assert ledger_problems(sent) >= {"not sealed"}
    assert "edited" not in ledger_problems(sent)  # the hashes alone would say "clean"


def test_a_ledger_row_appended_with_a_valid_hash_is_reported(sent: World) -> None:
    with sent.engine.begin() as conn:
        last = conn.execute(sa.select(delivery_ledger).where(
            delivery_ledger.c.organization_id == sent.org_id)
            .order_by(delivery_ledger.c.seq.desc()).limit(1)).one()._mapping
        row = {**last, "seq": last["seq"] + 1, "message_id": "<forged@acme-cloud.example>",
               "prev_hash": last["row_hash"]}
        row.pop("id")
        row["row_hash"] = ledger.row_hash(row)
        conn.execute(sa.insert(delivery_ledger).values(**row))
    assert ledger_problems(sent) == {"not sealed"}


def test_a_ledger_cut_at_its_tail_with_its_outbox_rows_is_reported(sent: World) -> None:
    with sent.engine.begin() as conn:
        last = conn.execute(sa.select(delivery_ledger.c.id, delivery_ledger.c.message_id)
                            .where(delivery_ledger.c.organization_id == sent.org_id)
                            .order_by(delivery_ledger.c.seq.desc()).limit(1)).one()
        conn.execute(sa.delete(delivery_ledger).where(delivery_ledger.c.id == last.id))
        conn.execute(sa.update(outbox).where(outbox.c.message_id == last.message_id)
                     .values(status="queued"))
    assert ledger_problems(sent) == {"truncated"}
