"""The outcomes of a batch are written with the next batch's claims — and never lost.

A sender keeps what SMTP answered for the messages of a batch pending and records them in the
transaction that claims the next batch (:mod:`sealbill.pipeline.delivery.pending`). Proven
here, against real databases and a real SMTP server: whatever stops the sender after message k
— the kill switch, a guard violation on a later message, a database error while composing the
next batch, SMTP failing, the canary check, a wait for retries — k's outcome is in the database
(``sent`` and its ledger row, or the failure) before anything looks at it; the sender works on
one connection per phase, with one write transaction per batch.

What a batch changes, and what it does not: the facts the guard judges a message on (the kill
switch and the run's status among them) are read at most one batch and at most
``send.FRESH_SECONDS`` before it goes. With ``batch=1``, or when the batch outlives that
(``FRESH_SECONDS = 0`` here: every message judged again just before it goes), a change after
message 2 stops message 3; otherwise it stops the first message of the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from sealbill.mail.smtp import SendResult
from sealbill.pipeline.delivery import compose, control
from sealbill.pipeline.delivery import send as send_module
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links, delivery_envelopes, delivery_ledger, outbox
from tests.integration.delivery.conftest import FAST, World, make_world

BOTH = pytest.mark.parametrize("which", ["world", "pg_world"])


class _CallingBack:
    """The real SMTP client; ``after(n)`` runs once its n-th message has been answered — while
    the sender holds no transaction (the answer is still pending in the sender)."""

    def __init__(self, world: World, after: Callable[[int], None]) -> None:
        self.inner, self.after, self.sent = world.transport(), after, 0

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        result = self.inner.send(mail_from, rcpt_to, data)
        self.sent += 1
        self.after(self.sent)
        return result

    def close(self) -> None:
        self.inner.close()


def _send(world: World, after: Callable[[int], None],
          options: SendOptions = FAST) -> send_module.SendReport:
    assert _canary_size(world) == 1  # the numbers below: message 1, then batches of the rest
    return send_run(world.engine, world.org_id, world.run_id,
                    transport=_CallingBack(world, after), signer=world.signer, options=options)


def _rows(world: World) -> dict[str, tuple[str, int]]:
    """Message-ID -> (status, attempts), as committed."""
    with world.engine.begin() as conn:
        return {str(m): (str(s), int(a)) for m, s, a in conn.execute(
            sa.select(outbox.c.message_id, outbox.c.status, outbox.c.attempts).where(
                outbox.c.organization_id == world.org_id))}


def _canary_size(world: World) -> int:
    with world.engine.begin() as conn:
        return len(conn.execute(sa.select(delivery_envelopes.c.id).where(
            delivery_envelopes.c.organization_id == world.org_id,
            delivery_envelopes.c.is_canary.is_(True))).all())


def _options(batch: int) -> SendOptions:
    return SendOptions(max_attempts=FAST.max_attempts, backoff_seconds=FAST.backoff_seconds,
                       backoff_max_seconds=FAST.backoff_max_seconds, batch=batch)


# (batch size, send.FRESH_SECONDS, messages SMTP accepted when a change after message 2 stops
# the sender): 4 accounts, the canary is message 1, then batches of the other three
CHANGE_AFTER_2 = pytest.mark.parametrize("batch,fresh,accepted", [
    (1, 1.0, 2),  # each message judged just before it goes
    (2, 60.0, 3),  # message 3 was judged with 2, in batch (2, 3): it goes; 4 is stopped
    (100, 0.0, 2),  # the batch outlives its fresh read before each message: judged again
], ids=["batch1", "batch2", "batch100-stale"])


def _ledger(world: World) -> list[str]:
    with world.engine.begin() as conn:
        return [str(m) for m in conn.execute(sa.select(delivery_ledger.c.message_id).where(
            delivery_ledger.c.organization_id == world.org_id)).scalars()]


def _assert_every_accepted_message_recorded(world: World) -> None:
    accepted = [str(m.message_id) for m in world.smtp.accepted]
    rows = _rows(world)
    assert {rows[m][0] for m in accepted} == {"sent"}, rows
    assert sorted(_ledger(world)) == sorted(accepted)
    assert [m for m, (status, _) in rows.items() if status == "sending"] == []
    assert world.ledger_ok() and world.wrong_deliveries() == []


def _revoke_every_link(world: World) -> None:
    with world.engine.begin() as conn:
        links = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == world.org_id)).scalars().all()
        for link in links:
            parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                    reason="left the company")


@BOTH
@CHANGE_AFTER_2
def test_outcome_of_last_message_recorded_when_kill_switch_stops_the_next(
        which: str, batch: int, fresh: float, accepted: int, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    monkeypatch.setattr(send_module, "FRESH_SECONDS", fresh)

    def pause_after_the_second(n: int) -> None:
        if n == 2:
            control.pause(world.engine, world.org_id, actor="ops", reason="stop now")

    report = _send(world, pause_after_the_second, _options(batch))
    assert report.stopped == "paused"
    assert len(world.smtp.accepted) == accepted
    _assert_every_accepted_message_recorded(world)
    # the next message was not sent, and is charged nothing: read before its claim, or its
    # claim undone (back to queued, 0 attempts)
    left = [row for m, row in _rows(world).items()
            if m not in {str(x.message_id) for x in world.smtp.accepted}]
    assert left and set(left) == {("queued", 0)}


@BOTH
@pytest.mark.parametrize("batch,accepted", [(1, 2), (2, 1)])
def test_outcome_recorded_when_composing_the_next_message_fails(
        which: str, batch: int, accepted: int, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error while reading message 3 stops the sender before anything of its
    batch is claimed (a batch is read whole before its claims): with batches of 2, message 2
    (the same batch) is not sent either."""
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    real, invoices = compose._read_documents, []

    def failing_third(conn: Any, invoice_id: int, rows: Any) -> Any:
        invoices.append(invoice_id)  # a batch's files are read message by message, in order
        if len(invoices) == 3:
            raise sa.exc.OperationalError("SELECT ...", None, RuntimeError("disk I/O error"))
        return real(conn, invoice_id, rows)

    monkeypatch.setattr(compose, "_read_documents", failing_third)
    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
        _send(world, lambda n: None, _options(batch))
    assert len(world.smtp.accepted) == accepted
    _assert_every_accepted_message_recorded(world)
    calls = [next(m for m in _rows(world) if m.startswith(f"<inv-{i}.")) for i in invoices]
    assert _rows(world)[calls[2]] == ("queued", 0)  # never claimed: nothing to resend
    assert {row for m, row in _rows(world).items() if m in calls[accepted:]} == {("queued", 0)}


@BOTH
@CHANGE_AFTER_2
def test_outcome_recorded_when_the_guard_halts_the_next_message(
        which: str, batch: int, fresh: float, accepted: int, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    monkeypatch.setattr(send_module, "FRESH_SECONDS", fresh)

    def revoke_after_the_second(n: int) -> None:
        if n == 2:
            _revoke_every_link(world)  # the next message's recipient is no longer verified

    report = _send(world, revoke_after_the_second, _options(batch))
    assert report.stopped == "halted" and world.run_status() == "halted"
    assert len(world.smtp.accepted) == accepted
    _assert_every_accepted_message_recorded(world)
    statuses = sorted(status for status, _ in _rows(world).values())
    assert statuses.count("set_aside") == 1  # the first message judged after the change
    # the rest of the batch is not sent, and charged nothing
    assert statuses == sorted(["sent"] * accepted + ["set_aside"] + ["queued"] * (3 - accepted))
    assert world.wrong_deliveries() == []


def test_failures_recorded_when_smtp_keeps_failing(world: World) -> None:
    assert world.plan().verdict == "proceed"

    def fail_after_the_canary(n: int) -> None:
        if n == 1:
            world.smtp.faults.extend(["4xx", "4xx"])

    options = SendOptions(max_attempts=4, backoff_seconds=30, max_consecutive_failures=2)
    report = _send(world, fail_after_the_canary, options)
    assert report.stopped == "smtp_failing"
    assert "smtp_failing" in world.alert_causes()
    _assert_every_accepted_message_recorded(world)
    statuses = sorted(_rows(world).values())
    assert statuses.count(("failed_temporary", 1)) == 2  # both failures written, none sending
    assert statuses.count(("sent", 1)) == 1


def test_canary_outcomes_recorded_before_canary_check(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert world.plan(canary_share=0.5).verdict == "proceed"
    real, seen = send_module.check_canary, []

    def looking(engine: Any, org_id: int, run_id: int, *rule: Any) -> str | None:
        with engine.begin() as conn:
            seen.extend(conn.execute(
                sa.select(outbox.c.message_id, outbox.c.status)
                .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
                .where(delivery_envelopes.c.is_canary.is_(True))).all())
        seen_ledger.update(_ledger(world))
        return real(engine, org_id, run_id, *rule)

    seen_ledger: set[str] = set()
    monkeypatch.setattr(send_module, "check_canary", looking)
    report = world.send()
    assert report.status == "sent"
    assert len(seen) >= 2 and {status for _, status in seen} == {"sent"}
    assert {str(m) for m, _ in seen} <= seen_ledger


def test_temporary_failure_recorded_before_waiting_to_retry(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert world.plan().verdict == "proceed"
    world.smtp.faults.append("4xx")  # the canary: retried after a wait
    real_sleep, during_waits = send_module.time.sleep, []

    def looking(seconds: float) -> None:
        during_waits.append(sorted(_rows(world).values()))
        real_sleep(seconds)

    monkeypatch.setattr(send_module.time, "sleep", looking)
    report = world.send()
    assert report.status == "sent"
    assert during_waits and during_waits[0].count(("failed_temporary", 1)) == 1
    assert not any(status == "sending" for rows in during_waits for status, _ in rows)


def test_a_sender_holds_one_connection_and_writes_once_per_batch(
        sqlite_engine: sa.engine.Engine, tmp_path: Any, smtp_server: Any,
        dkim_signer: Any) -> None:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=12)
    assert world.plan().verdict == "proceed"
    checkouts, write_transactions = [], []
    event.listen(sqlite_engine.pool, "checkout", lambda *_: checkouts.append(1))

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE":
            write_transactions.append(statement)

    report = world.send()
    assert report.status == "sent" and len(world.smtp.accepted) == 12
    # one checkout per phase, and a few for the run itself (8 here, with the sealed history
    # check and the address policy read once per run): not one per message (12 here)
    assert len(checkouts) <= 10, len(checkouts)
    # one write transaction per batch (its claims + the previous batch's outcomes; here the
    # canary and the rest: 2 batches), and a fixed few for the run (12 here: the send-lock row
    # taken and released, the identifier index, the run's status, the canary check, the
    # sealed history check, each phase's listings and last outcomes); one per message would
    # need 12 more
    assert len(write_transactions) <= 12 + 2, len(write_transactions)


@BOTH
def test_a_violation_inside_a_batch_lets_the_messages_before_it_go_and_halts_at_it(
        which: str, request: pytest.FixtureRequest) -> None:
    """Batch (2, 3, 4) after the canary; message 3's recipient is no longer verified when the
    batch is judged. Message 2 was judged fine: it goes, and is recorded; message 3 is judged
    again, first, in the next transaction (after 2's outcome), and halts the run there; message
    4 is not sent and is charged nothing — as when each message was judged just before it went.
    """
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    assert _canary_size(world) == 1
    with world.engine.begin() as conn:
        rest = conn.execute(
            sa.select(outbox.c.message_id, delivery_envelopes.c.account_id)
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .where(outbox.c.organization_id == world.org_id,
                   delivery_envelopes.c.is_canary.is_(False)).order_by(outbox.c.id)).all()
        links = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == world.org_id,
            contact_links.c.account_id == rest[1].account_id)).scalars().all()
        for link in links:
            parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                    reason="left the company")
    report = _send(world, lambda n: None)
    assert report.stopped == "halted" and world.run_status() == "halted"
    assert [str(m.message_id) for m in world.smtp.accepted][1:] == [str(rest[0].message_id)]
    _assert_every_accepted_message_recorded(world)
    rows = _rows(world)
    assert rows[str(rest[1].message_id)][0] == "set_aside"
    assert rows[str(rest[2].message_id)] == ("queued", 0)
    assert len(report.violations) == 1
    assert report.violations[0]["message_id"] == str(rest[1].message_id)


@BOTH
def test_a_sender_lists_its_rows_a_page_at_a_time_and_sends_each_once(
        which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of two rows (batches of one, two batches a page): every message goes once, a
    temporary failure on a middle page is retried in a later pass, and no listing holds more
    than a page — the sender's memory does not grow with the run."""
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    monkeypatch.setattr(send_module, "PAGE_BATCHES", 2)
    real_page, pages = send_module.box.page, []

    def page(*args: Any, **kwargs: Any) -> Any:
        rows = real_page(*args, **kwargs)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(send_module.box, "page", page)

    def fail_the_third(n: int) -> None:
        if n == 2:
            world.smtp.faults.append("4xx")  # message 3: a temporary failure, retried later

    report = send_run(world.engine, world.org_id, world.run_id,
                      transport=_CallingBack(world, fail_the_third), signer=world.signer,
                      options=_options(1))
    assert report.status == "sent"
    accepted = [str(m.message_id) for m in world.smtp.accepted]
    assert len(accepted) == len(set(accepted)) == len(_rows(world))
    assert max(pages) == 2 and len(pages) > 3, pages
    assert sorted(status for status, _ in _rows(world).values()) == ["sent"] * len(accepted)
    assert sorted(attempts for _, attempts in _rows(world).values())[-1] == 2
    _assert_every_accepted_message_recorded(world)
