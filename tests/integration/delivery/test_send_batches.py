"""A batch's statements at once: what the messages one by one read and wrote, on both databases.

The send stage runs its per-message statements for a whole batch (``store/delivery/
outbox_batches.py``: one pipelined ``executemany`` each on PostgreSQL). Proven here against
SQLite and PostgreSQL:
- the batch's fresh read, made before any of its claims, plus the claims of the batch's earlier
  messages (``send_claims.BatchClaims``), says exactly what one read per message says when
  each is made after the messages before it took their pairs;
- a claim is still a compare-and-set per message;
- a batch in which messages fail among sent ones records each outcome as it was: ``sent`` with
  the time of its ledger row, the failures with theirs and no ledger row; the chain verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.smtp import SendResult
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.pipeline.delivery.send_claims import BatchClaims
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_batches as batches
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import delivery_ledger, outbox, outbox_recipients
from tests.integration.delivery.conftest import FAST, World
from tests.integration.delivery.test_fresh_facts import _tangled

BOTH = pytest.mark.parametrize("which", ["world", "pg_world"])
ENGINES = pytest.mark.parametrize("engine_name", ["sqlite_engine", "pg_engine"])


@ENGINES
def test_a_batch_read_with_its_earlier_claims_says_what_reads_one_by_one_say(
        engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    org, items = _tangled(engine, tmp_path)
    plain, tampered = items[:6], items[6:]
    # besides the run's own messages (the first three hold their pairs already): a message
    # of invoice 1 to invoice 4's contact, one of invoice 0 to invoice 3's, and a second
    # message of invoice 5 to its own contact — each judged after the message whose pair
    # bears on it took that pair in the batch (each row its own outbox row, as in a batch)
    batch = [*plain, tampered[1], replace(tampered[3], outbox_id=plain[2].outbox_id),
             tampered[5]]
    seen_by_batch = BatchClaims()
    in_batch_effect = 0
    with engine.begin() as conn:
        read = batches.send_facts_many(conn, org, batch, 7)
        for item, early in zip(batch, read, strict=True):
            one_by_one = box.send_facts(conn, org, item, 7)  # after the earlier claims
            got = seen_by_batch.seen_by(item, early)
            assert got == one_by_one, item
            in_batch_effect += got != early
            fresh = one_by_one.fresh
            if any((fresh.pair_claims or {}).values()):
                continue  # refused by the guard's rule 4: takes nothing
            box.record_claims(conn, org, item, one_by_one.claimed_by_this_message)
            seen_by_batch.take(item, one_by_one.claimed_by_this_message)
        conn.rollback()
    assert in_batch_effect == 3  # the test sees what it means to


@ENGINES
def test_the_batch_read_is_the_read_of_each_message(
        engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    org, items = _tangled(engine, tmp_path)
    with engine.begin() as conn:
        assert batches.send_facts_many(conn, org, items, 7) == [
            box.send_facts(conn, org, item, 7) for item in items]
        assert batches.send_facts_many(conn, org, [], 7) == []


@ENGINES
def test_a_batch_claim_is_a_compare_and_set_per_message(
        engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    org, items = _tangled(engine, tmp_path)
    first, changed, third = items[:3]
    with engine.begin() as conn:  # another sender took the second meanwhile
        assert box.claim(conn, org, changed)
    with engine.begin() as conn:
        assert batches.claim_many(conn, org, [first, changed, third]) == [True, False, True]
        rows = dict(conn.execute(sa.select(outbox.c.id, outbox.c.attempts).where(
            outbox.c.id.in_([first.outbox_id, changed.outbox_id, third.outbox_id]))).all())
    assert rows == {first.outbox_id: first.attempts + 1, changed.outbox_id: 1,
                    third.outbox_id: third.attempts + 1}


@ENGINES
def test_batch_claims_take_each_message_s_pairs(
        engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    org, items = _tangled(engine, tmp_path)
    plain = items[3:6]  # no claim taken yet
    with engine.begin() as conn:
        held = batches.take_claims_many(conn, org, [(i, frozenset()) for i in plain])
        pairs = set(conn.execute(sa.select(
            outbox_recipients.c.outbox_id, outbox_recipients.c.invoice_id,
            outbox_recipients.c.contact_id).where(
            outbox_recipients.c.outbox_id.in_([i.outbox_id for i in plain]))).all())
    assert held == [set(), set(), set()]
    assert pairs == {(i.outbox_id, i.invoice_id, c) for i in plain for c, _ in i.recipients}


def test_a_pair_wanted_twice_in_one_batch_goes_to_the_first_message_that_wants_it(
        pg_engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL's one statement a batch takes the pairs in the batch's order, as one
    statement a message did: the second message wanting a pair finds it held."""
    org, items = _tangled(pg_engine, tmp_path)
    first, other = items[3], items[4]
    twin = replace(first, outbox_id=other.outbox_id)  # another row, first's invoice and pairs
    with pg_engine.begin() as conn:
        held = batches.take_claims_many(conn, org, [(first, frozenset()), (twin, frozenset())])
        owners = set(conn.execute(sa.select(outbox_recipients.c.outbox_id).where(
            outbox_recipients.c.invoice_id == first.invoice_id)).scalars())
        conn.rollback()
    assert held == [set(), {c for c, _ in first.recipients}]
    assert owners == {first.outbox_id}


@pytest.mark.parametrize("statement", ["_CLAIM_ALL", "_SENT_ALL"])
def test_a_batch_statement_finds_its_outbox_rows_by_primary_key(
        pg_engine: Engine, tmp_path: Path, statement: str) -> None:
    """Not by the organization: planned on an outbox analyzed empty, a join on the batch's
    ids alone hashed every row of the organization for each batch. With scans out of the way,
    the index left to the planner is the primary key's (the organization's is not usable)."""
    org, items = _tangled(pg_engine, tmp_path)
    prepared: Prepared = getattr(batches, statement)
    params = {"org": org, "ids": [i.outbox_id for i in items],
              "statuses": [i.status for i in items], "attempts": [i.attempts for i in items],
              "ats": [box.now() for _ in items], "at": box.now()}
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        compiled = prepared._compiled(conn.dialect)
        bound = prepared._params(compiled, {k: v for k, v in params.items()
                                            if k in compiled.binds})
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(
            "EXPLAIN " + compiled.sql, bound))
        conn.rollback()
    assert "pk_outbox" in plan, plan
    assert "ix_outbox_organization_id" not in plan, plan


@ENGINES
def test_a_batch_naming_an_outbox_row_twice_is_refused(
        engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine: Engine = request.getfixturevalue(engine_name)
    org, items = _tangled(engine, tmp_path)
    with pytest.raises(ValueError), engine.begin() as conn:
        batches.claim_many(conn, org, [items[3], items[3]])
    with pytest.raises(ValueError), engine.begin() as conn:
        batches.mark_sent_many(conn, org, [(items[3].outbox_id, box.now())] * 2)


def test_prepared_rows_many_gives_each_execution_s_rows_in_order(any_engine: Engine,
                                                                 tmp_path: Path) -> None:
    org, items = _tangled(any_engine, tmp_path)
    by_id = Prepared(sa.select(outbox.c.id, outbox.c.message_id).where(
        outbox.c.organization_id == sa.bindparam("org"), outbox.c.id == sa.bindparam("id")))
    ids = [items[2].outbox_id, -1, items[0].outbox_id]
    with any_engine.begin() as conn:
        got = by_id.rows_many(conn, [{"org": org, "id": i} for i in ids])
        assert [[tuple(r) for r in rows] for rows in got] == [
            [tuple(r) for r in by_id.rows(conn, {"org": org, "id": i})] for i in ids]
        assert [len(rows) for rows in got] == [1, 0, 1]
        assert by_id.rows_many(conn, []) == []


class _Answering:
    """The real SMTP client; before its n-th message, ``before(n)`` may queue a fault. Keeps
    the Message-IDs in the order they were given to SMTP."""

    def __init__(self, world: World, before: Callable[[int], None]) -> None:
        self.inner, self.before, self.given = world.transport(), before, list[str]()

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        self.given.append(str(BytesHeaderParser().parsebytes(data)["Message-ID"]))
        self.before(len(self.given))
        return self.inner.send(mail_from, rcpt_to, data)

    def close(self) -> None:
        self.inner.close()


@BOTH
def test_a_batch_with_failures_among_sent_messages_records_each_outcome(
        which: str, request: pytest.FixtureRequest) -> None:
    """Canary, then one batch of three: the second of it refused for now (4xx), the third
    refused for good (5xx). Each is recorded as it went — the first ``sent`` with its ledger
    row at the same instant, the others failed and not in the ledger — and the chain
    verifies; nothing stays ``sending``."""
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    faults = {3: "4xx", 4: "5xx"}

    def fault(n: int) -> None:
        if n in faults:
            world.smtp.faults.append(faults[n])

    # A backoff longer than the test: with FAST's 0.05 s, a loaded machine made the 4xx
    # message due again in the pass that follows a sending one, and it was retried (5 tries).
    options: SendOptions = replace(FAST, wait_for_retries=False, backoff_seconds=600.0,
                                   backoff_max_seconds=600.0)
    transport = _Answering(world, fault)
    report = send_run(world.engine, world.org_id, world.run_id, transport=transport,
                      signer=world.signer, options=options)
    assert report.attempted == 4 and len(transport.given) == 4
    # the judge's CPU is counted: the seal rule's a part of the guard's
    assert 0 < report.seal_seconds <= report.guard_seconds
    with world.engine.begin() as conn:
        by_id = {r.message_id: r for r in conn.execute(sa.select(
            outbox.c.message_id, outbox.c.status, outbox.c.attempts, outbox.c.sent_at).where(
            outbox.c.organization_id == world.org_id))}
        rows = [by_id[m] for m in transport.given]  # in the order they were sent
        ledger_rows = conn.execute(sa.select(
            delivery_ledger.c.seq, delivery_ledger.c.message_id, delivery_ledger.c.sent_at)
            .where(delivery_ledger.c.organization_id == world.org_id)
            .order_by(delivery_ledger.c.seq)).all()
    assert [(r.status, r.attempts) for r in rows] == [
        ("sent", 1), ("sent", 1), ("failed_temporary", 1), ("failed_permanent", 1)]
    accepted = [str(m.message_id) for m in world.smtp.accepted]
    assert [r.message_id for r in ledger_rows] == accepted == [r.message_id for r in rows[:2]]
    sent_at: dict[str, Any] = {r.message_id: r.sent_at for r in rows[:2]}
    assert {r.message_id: r.sent_at for r in ledger_rows} == sent_at
    assert [r.seq for r in ledger_rows] == [1, 2]
    assert world.ledger_ok() and world.wrong_deliveries() == []
