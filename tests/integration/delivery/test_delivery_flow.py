"""Delivery end to end against a real SMTP server: the normal path, legit fan-in, SMTP faults,
the kill switch, approvals, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dkim
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.dkim import DkimSigner
from sealbill.mail.readback import parse_message
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.plan import PlanError, approve_run
from sealbill.pipeline.delivery.send import SendError
from sealbill.store.parties import records as parties
from sealbill.store.schema import contacts, delivery_ledger, outbox
from tests.integration.delivery.conftest import World, make_world
from tests.support.smtp import SmtpCapture


def _assert_all_delivered_once(world: World) -> None:
    ids = [m.message_id for m in world.smtp.accepted]
    assert len(ids) == len(set(ids)) == len(world.scenario.invoice_ids)
    assert world.wrong_deliveries() == []
    assert world.ledger_ok()


@pytest.mark.parametrize("which", ["world", "pg_world"])
def test_a_run_reaches_each_account_and_nobody_else(which: str,
                                                    request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    result = world.plan()
    assert result.verdict == "proceed"
    report = world.send()
    assert report.status == "sent" and report.stopped is None
    _assert_all_delivered_once(world)
    archive = world.archive()
    for message in world.smtp.accepted:
        parsed = parse_message(message.data)
        # One account per message: To holds exactly its contact, the archive only in RCPT.
        assert len(parsed.addresses["to"]) == 1
        assert "bcc" not in parsed.header_counts and "cc" not in parsed.header_counts
        assert set(message.rcpt_tos) == {*parsed.addresses["to"], archive}
        assert b"\r\n" in message.data and b"\n\n" not in message.data.replace(b"\r\n", b"")
    with world.engine.begin() as conn:
        rows = conn.execute(sa.select(delivery_ledger)).all()
    assert {r.message_id for r in rows} == {m.message_id for m in world.smtp.accepted}
    assert all("account_reference" in r.data_categories for r in rows)


def test_messages_are_dkim_signed_and_verify(world: World, dkim_signer: DkimSigner) -> None:
    world.plan()
    world.send()
    record = dkim_signer.dns_txt_record().encode()
    for message in world.smtp.accepted:
        assert dkim.verify(message.data, dnsfunc=lambda name, timeout=5: record)


def test_an_accountant_verified_on_40_accounts_gets_40_invoices_without_a_hold(
        sqlite_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,
        dkim_signer: DkimSigner) -> None:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=40)
    long_ago = datetime.now(UTC) - timedelta(days=60)
    with world.engine.begin() as conn:
        accountant = parties.add_contact(conn, world.org_id, "ledger@cabinet-compta.example",
                                         name="Cabinet Compta", actor="ops", at=long_ago)
        for reference, account_id in world.scenario.account_ids.items():
            link = parties.link_contact(conn, world.org_id, accountant, account_id, "billing",
                                        actor="ops", at=long_ago)
            parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                    method="email_token", at=long_ago)
            world.entitled[reference].add("ledger@cabinet-compta.example")
    assert world.plan().verdict == "proceed"
    report = world.send()
    assert report.status == "sent" and not report.violations
    got = world.smtp.accepted_by_recipient()
    assert len(got["ledger@cabinet-compta.example"]) == 40
    assert all(len(got[f"billing{i}@client{i}.example"]) == 1 for i in range(1, 41))
    _assert_all_delivered_once(world)


@pytest.mark.parametrize("fault", ["4xx", "drop", "slow"])
def test_temporary_smtp_faults_are_retried_and_nothing_is_lost(world: World, fault: str) -> None:
    world.smtp.slow_seconds = 1.5  # longer than the client's 1 s timeout
    world.smtp.faults.extend([fault, fault])
    world.plan()
    report = world.send()
    assert report.status == "sent", report
    accepted = {m.message_id for m in world.smtp.accepted}
    assert len(accepted) == len(world.scenario.invoice_ids)
    # A message may arrive twice only after a drop/timeout, and then with the same Message-ID.
    with world.engine.begin() as conn:
        attempts = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.attempts)).all())
    assert sum(attempts.values()) == len(attempts) + 2
    assert world.wrong_deliveries() == [] and world.ledger_ok()


def test_a_refused_recipient_is_flagged_and_the_archive_copy_alone_is_not_a_delivery(
        world: World) -> None:
    world.smtp.reject_rcpt["billing2@client2.example"] = "550 5.1.1 no such mailbox"
    world.plan()
    world.send()
    with world.engine.begin() as conn:
        statuses = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.status)).all())
        bounced = conn.execute(sa.select(contacts.c.email).where(
            contacts.c.bounced_at.is_not(None))).scalars().all()
        ledger_rows = conn.execute(sa.select(delivery_ledger.c.message_id,
                                             delivery_ledger.c.recipients)).all()
    # the customer's only address refused it: not delivered (the archive copy went)
    assert sorted(statuses.values()).count("failed_permanent") == 1
    assert bounced == ["billing2@client2.example"]
    [failed] = [m for m, s in statuses.items() if s == "failed_permanent"]
    assert [r for m, r in ledger_rows if m == failed] == [
        [{"contact_id": None, "email": world.archive(), "role": "archive"}]]
    assert world.wrong_deliveries() == [] and world.ledger_ok()


def test_temporary_failures_are_bounded_and_a_failed_canary_stops_the_run(world: World) -> None:
    world.smtp.faults.extend(["4xx"] * 50)
    world.plan()
    report = world.send()
    assert report.status == "halted" and report.stopped == "canary_failed"
    with world.engine.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.status, outbox.c.attempts)).all()
    # The canary was tried exactly max_attempts times; nothing else was tried at all.
    assert sorted(rows) == sorted([("failed_temporary", 4)] + [("queued", 0)] * 3)
    assert {"retries_exhausted", "canary_failed"} <= set(world.alert_causes())
    assert len(world.smtp.received) == 4


def test_pause_stops_sending_and_resume_continues(world: World) -> None:
    world.plan()
    control.pause(world.engine, world.org_id, actor="ops", reason="incident drill")
    report = world.send()
    assert report.stopped == "paused" and world.smtp.received == []
    control.resume(world.engine, world.org_id, actor="ops", reason="drill over")
    assert world.send().status == "sent"
    _assert_all_delivered_once(world)


def test_a_held_plan_sends_nothing_until_someone_else_approves(world: World) -> None:
    from sealbill.domain.delivery_plan import DeliveryPolicy

    assert world.plan(policy=DeliveryPolicy(first_cycle="hold")).verdict == "hold"
    with pytest.raises(SendError, match="approve"):
        world.send()
    with pytest.raises(PlanError, match="cannot approve"):
        approve_run(world.engine, world.org_id, world.run_id, actor="test-runner",
                    reason="I started it")
    world.approve()
    assert world.send().status == "sent"
    assert world.smtp.received and world.wrong_deliveries() == []


def test_ledger_verify_reports_edits_and_deletions(world: World) -> None:
    world.plan()
    world.send()
    with world.engine.begin() as conn:
        conn.execute(sa.update(delivery_ledger).where(delivery_ledger.c.seq == 2)
                     .values(recipients=[{"contact_id": 9, "email": "someone@else.example"}]))
    assert not world.ledger_ok()
    with world.engine.begin() as conn:
        conn.execute(sa.delete(delivery_ledger).where(delivery_ledger.c.seq == 2))
        from sealbill.store.delivery import ledger

        problems = ledger.verify(conn, world.org_id).problems
    assert {"gap", "chain broken", "missing"} <= {p["problem"] for p in problems}
    with world.engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(delivery_ledger.c.seq))).scalar()
        conn.execute(sa.delete(delivery_ledger).where(delivery_ledger.c.seq == last))
        from sealbill.store.delivery import ledger as ledger_store

        tail = ledger_store.verify(conn, world.org_id).problems
    assert any(p["problem"] == "missing" for p in tail)
