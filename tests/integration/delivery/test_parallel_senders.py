"""Several sender processes on one run (``--senders N``): the same guarantees as one sender.

Each sender is forked after the canary, owns a slice of the outbox, has its own database and SMTP
connections and runs the guard before each of its messages. Checked here on SQLite and
PostgreSQL against a real SMTP server: every invoice delivered once to its own recipients; a
violation seen by one sender halts the run and the others stop before their next batch; a
sender killed mid-run loses nothing, and a restart resends only the messages of its batch in
flight (those SMTP had taken arrive twice).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.pipeline.delivery import compose
from sealbill.pipeline.delivery.send import SendOptions, SendReport, send_run
from sealbill.store.db import create_engine
from sealbill.store.delivery import ledger
from sealbill.store.schema import delivery_ledger, outbox
from tests.integration.delivery.conftest import FAST, World, invoice_number_in, make_world
from tests.support.smtp import SmtpCapture

TWO = SendOptions(max_attempts=FAST.max_attempts, backoff_seconds=FAST.backoff_seconds,
                  backoff_max_seconds=FAST.backoff_max_seconds, senders=2)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "postgresql"])
def big_world(request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpCapture,
              dkim_signer: Any) -> World:
    engine = request.getfixturevalue("sqlite_engine" if request.param == "sqlite"
                                     else "pg_engine")
    return make_world(engine, tmp_path, smtp_server, dkim_signer, accounts=12)


def _send_with_two(world: World) -> SendReport:
    return send_run(world.engine, world.org_id, world.run_id, transport=world.transport(),
                    signer=world.signer, options=TWO, transport_factory=world.transport)


def test_two_senders_deliver_every_invoice_once_to_its_own_recipients(
        big_world: World) -> None:
    assert big_world.plan().verdict == "proceed"
    report = _send_with_two(big_world)
    assert report.senders == 2
    assert report.status == "sent" and report.counts == {"sent": 12}
    ids = [m.message_id for m in big_world.smtp.accepted]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert big_world.wrong_deliveries() == []
    assert big_world.ledger_ok()
    assert report.attempted == 12 and report.cpu_seconds > 0


def test_a_violation_in_one_sender_halts_the_run_for_all(
        big_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = compose._read_documents
    ids = big_world.scenario.invoice_ids
    bad = set(ids[len(ids) // 2:])  # the second half: after the canary, in both slices

    def swapped(conn: Any, invoice_id: int, rows: Any) -> dict[str, bytes]:
        files = real(conn, invoice_id, rows)
        if invoice_id not in bad:
            return files
        other = ids[(ids.index(invoice_id) + 1) % len(ids)]
        theirs = compose._DOCUMENTS.rows(conn, {"org": big_world.org_id, "invoice": other})
        return {**files, "pdf": real(conn, other, theirs)["pdf"]}

    # inherited by the forked senders
    monkeypatch.setattr(compose, "_read_documents", swapped)
    big_world.plan()
    report = _send_with_two(big_world)
    assert report.stopped == "halted"
    assert big_world.run_status() == "halted"
    assert big_world.wrong_deliveries() == []
    assert "Factur-X XML is another invoice" in big_world.alert_text()
    sent_numbers = {m.message_id for m in big_world.smtp.accepted}
    assert len(sent_numbers) < 12  # the run stopped: the faulty half was not sent
    assert big_world.ledger_ok()


def _cli_send(db: Path, run_id: int, port: int, kill_at: str | None) -> Any:
    env = {**os.environ, "SEALBILL_SMTP_PORT": str(port), "SEALBILL_SMTP_TIMEOUT": "2",
           "PYTHONPATH": str(ROOT / "src")}
    env.pop("SEALBILL_DKIM_KEY", None)
    env["SEALBILL_DKIM"] = "off"  # unsigned on purpose: these tests read the bytes
    env.pop("SEALBILL_TEST_KILL_AT", None)
    if kill_at:
        env["SEALBILL_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "sealbill", "run", "send", str(run_id), "--org", "acme-cloud",
         "--db", f"sqlite:///{db}", "--json", "--backoff", "0.05", "--senders", "2"],
        env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_a_sender_killed_mid_run_loses_nothing(trial: int, tmp_path: Path,
                                               smtp_server: SmtpCapture,
                                               sqlite_engine: Any, dkim_signer: Any) -> None:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=10)
    assert world.plan().verdict == "proceed"
    db = Path(str(sqlite_engine.url.database))
    sqlite_engine.dispose()
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(db, copy)
    rng = random.Random(trial)
    # every sender process (the canary's, then each forked one) dies at its n-th message
    n, phase = rng.randint(2, 4), rng.choice(["claimed", "smtp_done"])
    killed = _cli_send(copy, world.run_id, smtp_server.port, f"{n}:{phase}")
    assert killed.returncode != 0
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        at_kill = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.status)).all())
    engine.dispose()
    unrecorded = {m.message_id for m in smtp_server.accepted if at_kill[m.message_id] == "sending"}
    restarted = _cli_send(copy, world.run_id, smtp_server.port, None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert json.loads(restarted.stdout)["status"] == "sent"

    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        expected = set(conn.execute(sa.select(outbox.c.message_id)).scalars())
        in_ledger = list(conn.execute(sa.select(delivery_ledger.c.message_id)).scalars())
        report = ledger.verify(conn, world.org_id)
    engine.dispose()
    seen = Counter(m.message_id for m in smtp_server.accepted)
    assert set(seen) == expected
    duplicates = {mid for mid, count in seen.items() if count > 1}
    # exactly what SMTP had taken and the database had not recorded: per sender process (the
    # canary's, then two forked) at most its batch in flight, i.e. its messages before the kill
    assert duplicates == unrecorded
    assert len(duplicates) <= 3 * (n if phase == "smtp_done" else n - 1)
    for mid in duplicates:
        assert len({m.data for m in smtp_server.accepted if m.message_id == mid}) == 1
    assert report.ok and sorted(in_ledger) == sorted(expected)


def test_a_pair_claimed_by_another_sender_after_the_fresh_read_halts_the_run(
        pg_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race two PostgreSQL senders can run into: another sender commits the claim of an
    (invoice, recipient) pair after this sender's fresh read saw it free. The unique constraint
    refuses this sender's claim, which halts the run as a guard violation (rule 4), and the
    message is not sent. The other sender is simulated: its claim is committed, on a connection
    of its own, just before this sender records its claims; and a rival that has not committed
    yet is waited for (the next test)."""
    from sealbill.store.delivery import outbox as box
    from sealbill.store.delivery import outbox_batches as batches
    from sealbill.store.schema import outbox_recipients

    world = pg_world
    assert world.plan().verdict == "proceed"
    target = world.scenario.invoice_ids[-1]  # after the canary
    real = batches.take_claims_many  # PostgreSQL's claiming statement, for a batch
    raced: list[int] = []

    def claimed_meanwhile(conn: Any, org_id: int, wanted: Any) -> list[set[int]]:
        for item, _ in wanted:
            if item.invoice_id != target or raced:
                continue
            with world.engine.begin() as other:  # the other sender's transaction, committed
                another = other.execute(sa.select(outbox.c.id).where(
                    outbox.c.run_id == item.run_id, outbox.c.id != item.outbox_id)
                    .limit(1)).scalar_one()
                contact_id, email = item.recipients[0]
                other.execute(sa.insert(outbox_recipients).values(
                    organization_id=org_id, run_id=item.run_id, outbox_id=another,
                    invoice_id=item.invoice_id, contact_id=contact_id, email=email,
                    created_at=box.now()))
            raced.append(item.outbox_id)
        return real(conn, org_id, wanted)

    monkeypatch.setattr(batches, "take_claims_many", claimed_meanwhile)
    report = world.send()
    assert raced and report.stopped == "halted"
    assert [v["rule"] for e in report.violations for v in e["violations"]] == ["run_limits"]
    assert "claimed by another sender" in world.alert_text()
    with world.engine.connect() as conn:
        status = conn.execute(sa.select(outbox.c.status).where(
            outbox.c.id == raced[0])).scalar_one()
    assert status == "set_aside"
    numbers = {invoice_number_in(m.data) for m in world.smtp.accepted}
    with world.engine.connect() as conn:
        target_number = conn.execute(sa.text("SELECT number FROM invoices WHERE id = :i"),
                                     {"i": target}).scalar_one()
    assert target_number not in numbers  # the raced message never reached SMTP
    assert world.wrong_deliveries() == [] and world.ledger_ok()


def test_a_claim_held_by_an_uncommitted_sender_is_waited_for_then_refused(
        pg_world: World) -> None:
    """The rival's claim is not committed yet when this sender claims: the insert waits for it
    (the unique index), and once the rival commits, this message takes nothing and is
    refused. Run directly on the claiming statement, with two connections."""
    import threading

    from sealbill.store.delivery import outbox as box
    from sealbill.store.delivery import outbox_batches as batches
    from sealbill.store.schema import outbox_recipients

    world = pg_world
    assert world.plan().verdict == "proceed"
    with world.engine.begin() as conn:
        items = box.items(conn, world.org_id, world.run_id, statuses=box.RETRYABLE)
    item, other = items[0], items[1]
    contact_id, email = item.recipients[0]
    rival = world.engine.connect()
    rival_tx = rival.begin()
    rival.execute(sa.insert(outbox_recipients).values(
        organization_id=world.org_id, run_id=item.run_id, outbox_id=other.outbox_id,
        invoice_id=item.invoice_id, contact_id=contact_id, email=email, created_at=box.now()))
    result: list[set[int]] = []

    def claim() -> None:
        with world.engine.begin() as conn:
            result.append(batches.take_claims_many(conn, world.org_id, [(item, frozenset())])[0])

    waiting = threading.Thread(target=claim)
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive() and result == []  # blocked on the rival's uncommitted row
    rival_tx.commit()
    rival.close()
    waiting.join(timeout=10)
    assert result == [{contact_id}]
    with world.engine.connect() as conn:
        owners = conn.execute(sa.select(outbox_recipients.c.outbox_id).where(
            outbox_recipients.c.invoice_id == item.invoice_id,
            outbox_recipients.c.contact_id == contact_id)).scalars().all()
    assert owners == [other.outbox_id]
