"""The next batch built while this one is sent (``send_ahead``), against a real database and a
real SMTP server on loopback.

A sender builds and reads back batch N+1 in a thread while batch N waits for SMTP; judging,
claims, SMTP and every write stay in the sender's own thread. Proven here: whatever stops the
sending of batch N — the breaker (``smtp_failing``, its alert recorded; ``smtp_session``), an
exception in the transport, a failure in the thread itself — the prepared batch N+1 is
dropped: nothing of it reaches SMTP, is claimed or is recorded (its rows stay ``queued`` with
no attempt); the outcomes of what SMTP answered are recorded as before; an exception in either
thread is raised by ``send_run``. And over batch sizes and failure patterns (Hypothesis),
messages reach SMTP in the outbox's order, each once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from sealbill.domain import guard
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import SendResult
from sealbill.pipeline.delivery import examine
from sealbill.pipeline.delivery.send import SendOptions, SendReport, send_run
from sealbill.store.schema import delivery_envelopes, delivery_ledger, outbox
from tests.integration.delivery.conftest import World, make_world
from tests.support.smtp import SmtpCapture

ACCOUNTS = 8  # the canary (message 1), then batches of BATCH: (2, 3, 4), (5, 6, 7), (8)
BATCH = 3
THREAD = "sealbill-next-batch"
_slugs = itertools.count(1)


class _BuiltInThread:
    """Counts the messages the guard read back in the next batch's thread; ``ready`` is set
    once ``wanted`` of them are (the whole next batch built: the test then acts)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wanted: int,
                 fail: bool = False) -> None:
        self.count, self.wanted, self.fail = 0, wanted, fail
        self.ready = threading.Event()
        real = examine.examine

        def spy(outgoing: guard.Outgoing, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name == THREAD:
                if self.fail:
                    raise RuntimeError("the read-back broke in the thread")
                self.count += 1
                if self.count >= self.wanted:
                    self.ready.set()
            return real(outgoing, *args, **kwargs)

        monkeypatch.setattr(examine, "examine", spy)


class _ActingBefore:
    """The real SMTP client; before its ``n``-th message it waits for the next batch to be
    built in the thread, then runs ``act`` (which may raise, as a broken transport would)."""

    def __init__(self, world: World, built: _BuiltInThread, n: int,
                 act: Callable[[], None]) -> None:
        self.inner, self.built, self.n, self.act, self.calls = world.transport(), built, n, act, 0

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        self.calls += 1
        if self.calls == self.n:
            assert self.built.ready.wait(10), "the next batch was not built while sending"
            self.act()
        return self.inner.send(mail_from, rcpt_to, data)

    def close(self) -> None:
        self.inner.close()


def _options(**kwargs: Any) -> SendOptions:
    return SendOptions(**{"max_attempts": 4, "backoff_seconds": 30.0,
                          "backoff_max_seconds": 30.0, "batch": BATCH,
                          "wait_for_retries": False, **kwargs})


def _order(world: World) -> list[str]:
    """The run's Message-IDs in the order they are to go: the canary, then the rest by id."""
    with world.engine.begin() as conn:
        rows = conn.execute(
            sa.select(outbox.c.message_id, delivery_envelopes.c.is_canary)
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .where(outbox.c.organization_id == world.org_id).order_by(outbox.c.id)).all()
    return [str(m) for m, c in rows if c] + [str(m) for m, c in rows if not c]


def _rows(world: World) -> dict[str, tuple[str, int]]:
    with world.engine.begin() as conn:
        return {str(m): (str(s), int(a)) for m, s, a in conn.execute(
            sa.select(outbox.c.message_id, outbox.c.status, outbox.c.attempts).where(
                outbox.c.organization_id == world.org_id))}


def _ledger(world: World) -> list[str]:
    with world.engine.begin() as conn:
        return [str(m) for m in conn.execute(sa.select(delivery_ledger.c.message_id).where(
            delivery_ledger.c.organization_id == world.org_id)).scalars()]


def _received(world: World) -> list[str]:
    ours = set(_rows(world))
    return [str(m.message_id) for m in world.smtp.received if m.message_id in ours]


def _accepted(world: World) -> list[str]:
    ours = set(_rows(world))
    return [str(m.message_id) for m in world.smtp.accepted if m.message_id in ours]


def _assert_recorded(world: World) -> None:
    """Every message SMTP accepted is ``sent`` with its ledger row; the chain verifies."""
    rows, accepted = _rows(world), _accepted(world)
    assert {rows[m][0] for m in accepted} <= {"sent"}
    assert sorted(_ledger(world)) == sorted(accepted)
    assert world.ledger_ok() and world.wrong_deliveries() == []


@pytest.fixture
def eight(sqlite_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,
          dkim_signer: DkimSigner) -> World:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=ACCOUNTS)
    assert world.plan().verdict == "proceed"
    assert len(_order(world)) == ACCOUNTS and len(_canary(world)) == 1
    return world


def _canary(world: World) -> list[str]:
    with world.engine.begin() as conn:
        return [str(m) for m in conn.execute(
            sa.select(outbox.c.message_id)
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .where(outbox.c.organization_id == world.org_id,
                   delivery_envelopes.c.is_canary.is_(True))).scalars()]


def _send(world: World, transport: Any, options: SendOptions) -> SendReport:
    return send_run(world.engine, world.org_id, world.run_id, transport=transport,
                    signer=world.signer, options=options)


def _refuse_the_session(world: World) -> None:
    world.smtp.mail_reply = "554 5.7.1 Client host rejected: relay access denied"


def _fail_twice(world: World) -> None:
    world.smtp.faults.extend(["4xx", "4xx"])


@pytest.mark.parametrize("stop,act,given_to_smtp", [
    ("smtp_failing", _fail_twice, 3),  # messages 2 and 3 fail: the breaker after 3
    ("smtp_session", _refuse_the_session, 2),  # message 2's session refused
])
def test_a_breaker_stop_drops_the_next_batch_built_meanwhile_unsent_and_unrecorded(
        eight: World, monkeypatch: pytest.MonkeyPatch, stop: str,
        act: Callable[[World], None], given_to_smtp: int) -> None:
    world = eight
    built = _BuiltInThread(monkeypatch, wanted=BATCH)  # (5, 6, 7), built while 2 waits
    transport = _ActingBefore(world, built, 2, lambda: act(world))
    report = _send(world, transport, _options(max_consecutive_failures=2))
    assert report.stopped == stop
    assert built.count == BATCH and transport.calls == given_to_smtp
    order, rows = _order(world), _rows(world)
    # what went, went in order (a refused session: message 2 had no DATA); the canary
    # accepted and recorded
    assert _received(world) == order[:given_to_smtp if stop == "smtp_failing" else 1]
    assert _accepted(world) == order[:1]
    _assert_recorded(world)
    # the rest of the current batch released, the next batch (built) never claimed
    assert [rows[m] for m in order[given_to_smtp:]] == [("queued", 0)] * (
        ACCOUNTS - given_to_smtp)
    assert not any(status == "sending" for status, _ in rows.values())
    if stop == "smtp_failing":
        assert [rows[m] for m in order[1:3]] == [("failed_temporary", 1)] * 2
        assert "smtp_failing" in world.alert_causes()
    else:
        assert world.run_status() == "paused"


def test_a_transport_exception_while_the_next_batch_is_built_is_raised_and_what_went_is_recorded(
        eight: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world = eight
    built = _BuiltInThread(monkeypatch, wanted=BATCH)

    def cut() -> None:
        raise ConnectionResetError("the wire was cut")

    with pytest.raises(ConnectionResetError, match="wire was cut"):
        _send(world, _ActingBefore(world, built, 3, cut), _options())
    order, rows = _order(world), _rows(world)
    assert _accepted(world) == order[:2] == _received(world)
    _assert_recorded(world)
    assert [rows[m][0] for m in order[:2]] == ["sent", "sent"]
    # 3 and 4 were claimed for their batch and 3 was being given to SMTP: left `sending`,
    # as after a crash (sent again with their Message-ID); the next batch was never claimed
    assert [rows[m][0] for m in order[2:4]] == ["sending", "sending"]
    assert [rows[m] for m in order[4:]] == [("queued", 0)] * (ACCOUNTS - 4)


def test_a_failure_in_the_thread_is_raised_after_the_current_batch_went_and_was_recorded(
        eight: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world = eight
    _BuiltInThread(monkeypatch, wanted=BATCH, fail=True)
    with pytest.raises(RuntimeError, match="read-back broke in the thread"):
        _send(world, world.transport(), _options())
    order, rows = _order(world), _rows(world)
    assert _accepted(world) == order[:4] == _received(world)  # the canary, then (2, 3, 4)
    _assert_recorded(world)
    assert [rows[m] for m in order[4:]] == [("queued", 0)] * (ACCOUNTS - 4)


# Hypothesis: one organization per example in the test's database; the canary is accepted
# (a failed canary stops the run before the rest: another test's subject), the other seven
# messages get any of these replies at DATA.
REPLIES = st.lists(st.sampled_from(["ok", "4xx", "5xx"]), min_size=ACCOUNTS - 1,
                   max_size=ACCOUNTS - 1)


def _expected_stop(replies: list[str], in_a_row: int) -> int | None:
    """The message (0-based, after the canary) at which the breaker stops, if it does."""
    failures = 0
    for k, reply in enumerate(replies):
        failures = 0 if reply == "ok" else failures + 1
        if failures >= in_a_row:
            return k
    return None


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.integers(1, 4), in_a_row=st.integers(2, 4), replies=REPLIES)
def test_messages_reach_smtp_in_order_each_once_whatever_the_batches_and_failures(
        sqlite_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,
        dkim_signer: DkimSigner, batch: int, in_a_row: int, replies: list[str]) -> None:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=ACCOUNTS,
                       slug=f"org-{next(_slugs)}")
    assert world.plan().verdict == "proceed"
    smtp_server.faults.clear()
    smtp_server.faults.extend(["ok", *replies])
    report = _send(world, world.transport(), _options(
        batch=batch, max_consecutive_failures=in_a_row, max_attempts=1))
    smtp_server.faults.clear()
    order, rows = _order(world), _rows(world)
    stop = _expected_stop(replies, in_a_row)
    went = ACCOUNTS if stop is None else stop + 2
    assert report.stopped == (None if stop is None else "smtp_failing")
    assert _received(world) == order[:went]  # in order, each once
    _assert_recorded(world)
    expected = {"ok": "sent", "4xx": "failed_temporary", "5xx": "failed_permanent"}
    assert [rows[m] for m in order[:went]] == [
        (expected[r], 1) for r in ["ok", *replies][:went]]
    assert [rows[m] for m in order[went:]] == [("queued", 0)] * (ACCOUNTS - went)
