"""Delivery failures against the real test SMTP server, and the operator steps after them.

Per recipient: refused (550) and deferred (450) addresses in the canary, mid-run and among
several recipients of one message; 450 until the retries run out, then the server recovers and
``run retry`` delivers; session refusals by the relay (at connect, at MAIL FROM, a RCPT refusal
naming the client) pause the run without charging a message or flagging a contact. After each:
every deliverable invoice reached each of its entitled recipients exactly once (the server's own
record), nothing was sent twice, and ``run status`` names what was not delivered, with the
server's reply and the next step.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SendResult, SmtpSender
from sealbill.pipeline.delivery import control, send_checks
from sealbill.pipeline.delivery import set_aside as set_asides
from sealbill.pipeline.delivery.send import SendOptions, SendReport, send_run
from sealbill.store.parties import records as parties
from sealbill.store.schema import contacts, delivery_envelopes, delivery_ledger, invoices, outbox
from tests.integration.delivery.conftest import FAST, World
from tests.support.smtp import refusing_server

BOTH = pytest.mark.parametrize("which", ["world", "pg_world"])


def _canary_address(world: World) -> str:
    with world.engine.begin() as conn:
        [recipients] = conn.execute(sa.select(delivery_envelopes.c.recipients).where(
            delivery_envelopes.c.run_id == world.run_id,
            delivery_envelopes.c.is_canary.is_(True))).scalars().all()
    return str(recipients[0]["email"])


def _add_billing_contact(world: World, reference: str, email: str) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=60)  # not "verified just before the run"
    with world.engine.begin() as conn:
        cid = parties.add_contact(conn, world.org_id, email, actor="ops", at=long_ago)
        link = parties.link_contact(conn, world.org_id, cid, world.scenario.account_ids[reference],
                                    "billing", actor="ops", at=long_ago)
        parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                method="email_token", at=long_ago)
    world.entitled[reference].add(email)


def _plan(world: World, **kwargs: object) -> None:
    if world.plan(**kwargs).verdict == "hold":
        world.approve()


def _statuses(world: World) -> dict[str, str]:
    """Invoice number -> outbox status."""
    with world.engine.begin() as conn:
        return {str(n): str(s) for n, s in conn.execute(
            sa.select(invoices.c.number, outbox.c.status)
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
            .where(outbox.c.run_id == world.run_id))}


def _bounced(world: World) -> list[str]:
    with world.engine.begin() as conn:
        return sorted(conn.execute(sa.select(contacts.c.email).where(
            contacts.c.organization_id == world.org_id,
            contacts.c.bounced_at.is_not(None))).scalars())


def _ledger(world: World) -> list[tuple[str, int, list[str]]]:
    with world.engine.begin() as conn:
        return [(str(m), int(p), sorted(r["email"].lower() for r in rs)) for m, p, rs in
                conn.execute(sa.select(delivery_ledger.c.message_id, delivery_ledger.c.part,
                                       delivery_ledger.c.recipients)
                             .where(delivery_ledger.c.organization_id == world.org_id)
                             .order_by(delivery_ledger.c.seq))]


def assert_delivered_once_except(world: World, refused: set[str]) -> None:
    """Every entitled recipient of every invoice got it exactly once — but the ``refused``
    addresses — and the ledger lists exactly what the server accepted, acceptance by
    acceptance."""
    pairs = world.smtp.accepted_pairs()
    assert [p for p, n in pairs.items() if n > 1] == []  # nothing sent twice
    got = {rcpt for _, rcpt in pairs}
    entitled = {a for addresses in world.entitled.values() for a in addresses}
    assert got - {(world.archive() or "").lower()} == entitled - refused
    ledger_pairs = sorted((m, r) for m, _, rs in _ledger(world) for r in rs)
    assert ledger_pairs == sorted(pairs)
    assert world.wrong_deliveries() == [] and world.ledger_ok()


def _undelivered(world: World) -> list[dict[str, object]]:
    return list(control.status(world.engine, world.org_id, world.run_id)["undelivered"])


@BOTH
def test_one_bad_address_in_the_canary_does_not_strand_the_run(
        which: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    _plan(world)
    bad = _canary_address(world)
    world.smtp.reject_rcpt[bad] = f"550 5.1.1 <{bad}>: Recipient address rejected"
    report = world.send()
    assert report.stopped is None and report.status == "incomplete"
    assert sorted(_statuses(world).values()) == ["failed_permanent", "sent", "sent", "sent"]
    assert _bounced(world) == [bad]
    assert_delivered_once_except(world, {bad})
    [missing] = _undelivered(world)
    assert missing["recipient"] == bad and missing["recipient_state"] == "bounced"
    assert "550 5.1.1" in str(missing["reply"]) and "--replan" in str(missing["next_step"])
    assert missing["account"] and missing["invoice"]
    assert control.status(world.engine, world.org_id, world.run_id)["exit_code"] == 5


@pytest.mark.parametrize("page", [send_checks.CANARY_PAGE, 1])  # 1: a row per page read
@pytest.mark.parametrize("refused", [1, 2])
def test_the_canary_halts_the_run_on_n_of_m_failures_not_on_one(
        world: World, refused: int, page: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_checks, "CANARY_PAGE", page)
    _plan(world, canary_share=0.5)  # two canary messages of four; the rule: 2 and 30 %
    with world.engine.begin() as conn:
        canary = sorted(str(r[0]["email"]) for r in conn.execute(
            sa.select(delivery_envelopes.c.recipients).where(
                delivery_envelopes.c.is_canary.is_(True))).scalars())
    for address in canary[:refused]:
        world.smtp.reject_rcpt[address] = "550 5.1.1 user unknown"
    report = world.send()
    if refused == 2:
        assert report.stopped == "canary_failed" and report.status == "halted"
        assert sorted(_statuses(world).values()) == ["failed_permanent"] * 2 + ["queued"] * 2
        assert "2 of 2 canary messages" in world.alert_text()
        assert "550 5.1.1 user unknown" in world.alert_text()
    else:
        assert report.stopped is None and report.status == "incomplete"
        assert_delivered_once_except(world, {canary[0]})


def test_a_message_goes_to_the_recipients_that_accept_it(world: World) -> None:
    _add_billing_contact(world, "A0002", "ap2@client2.example")
    _plan(world)
    world.smtp.reject_rcpt["ap2@client2.example"] = "550 5.1.1 mailbox unavailable"
    world.send()
    assert set(_statuses(world).values()) == {"sent"}
    assert _bounced(world) == ["ap2@client2.example"]
    assert_delivered_once_except(world, {"ap2@client2.example"})
    [row] = [r for r in _ledger(world) if "billing2@client2.example" in r[2]]
    assert row[2] == sorted(["billing2@client2.example", (world.archive() or "").lower()])
    [missing] = _undelivered(world)
    assert missing["recipient"] == "ap2@client2.example" and missing["status"] == "sent"
    assert control.status(world.engine, world.org_id, world.run_id)["exit_code"] == 5


@BOTH
def test_a_deferred_recipient_gets_the_retry_alone_with_the_same_message_id(
        which: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    _add_billing_contact(world, "A0003", "ap3@client3.example")
    _add_billing_contact(world, "A0003", "old3@client3.example")
    _plan(world)
    world.smtp.rcpt_script["ap3@client3.example"] = deque(["450 4.2.1 mailbox busy"] * 2)
    world.smtp.reject_rcpt["old3@client3.example"] = "550 5.1.1 user unknown"
    report = world.send()
    # the retries passed the guard although a recipient of the same message bounced meanwhile
    assert report.status == "sent" and not report.violations
    assert _bounced(world) == ["old3@client3.example"]
    assert_delivered_once_except(world, {"old3@client3.example"})
    [(first, p1, r1), (again, p2, r2)] = [r for r in _ledger(world)
                                          if {"billing3@client3.example",
                                              "ap3@client3.example"} & set(r[2])]
    assert first == again and p1 < p2  # one message, two acceptances
    assert r2 == ["ap3@client3.example"] and "ap3@client3.example" not in r1
    assert "old3@client3.example" not in r1 + r2
    # the same message (the DKIM signature carries its signing time; the rest is identical)
    copies = {m.data.split(b"\r\n\r\n", 1)[1] for m in world.smtp.accepted
              if m.message_id == first}
    assert len(copies) == 1


@BOTH
def test_retries_exhausted_then_the_server_recovers_and_run_retry_delivers(
        which: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    _plan(world)
    canary = _canary_address(world)
    stuck = next(a for addresses in world.entitled.values() for a in addresses if a != canary)
    world.smtp.rcpt_script[stuck] = deque(["451 4.3.0 try again later"] * 50)
    options = SendOptions(max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.1)
    first = world.send(options=options)
    assert first.status == "incomplete"
    [missing] = _undelivered(world)
    assert missing["recipient"] == stuck and missing["recipient_state"] == "deferred"
    assert "451 4.3.0" in str(missing["reply"]) and "run retry" in str(missing["next_step"])
    assert _bounced(world) == []

    world.smtp.rcpt_script.clear()  # the mailbox recovers
    done = set_asides.retry(world.engine, world.org_id, world.run_id, None, actor="ops",
                            reason="mailbox fixed")
    assert len(done["queued"]) == 1
    assert world.send(options=options).status == "sent"
    assert_delivered_once_except(world, set())
    assert _undelivered(world) == []
    assert control.status(world.engine, world.org_id, world.run_id)["exit_code"] == 0


def test_a_bad_address_mid_run_leaves_the_others_delivered(world: World) -> None:
    _plan(world)
    canary = _canary_address(world)
    bad = sorted(a for addresses in world.entitled.values() for a in addresses
                 if a != canary)[1]
    world.smtp.reject_rcpt[bad] = "550 5.1.1 no such user"
    assert world.send().status == "incomplete"
    assert_delivered_once_except(world, {bad})
    assert [m["recipient"] for m in _undelivered(world)] == [bad]
    # run retry does not resend a message whose only customer address bounced
    done = set_asides.retry(world.engine, world.org_id, world.run_id, None, actor="ops")
    assert done["queued"] == [] and len(done["skipped"]) == 1


SESSION_FAULTS = {
    "client host rejected at MAIL": ("mail", "554 5.7.1 <localhost[127.0.0.1]>: Client host "
                                             "rejected: Access denied"),
    "STARTTLS required at MAIL": ("mail", "530 5.7.0 Must issue a STARTTLS command first"),
    "relay refused at RCPT": ("rcpt", "554 5.7.1 Relay access denied"),
    "refused at connect": ("connect", "554 5.7.1 No SMTP service for you"),
    "connection refused": ("closed", ""),
}


def _transport(port: int) -> SmtpSender:
    return SmtpSender(SmtpConfig(host="127.0.0.1", port=port, timeout=1.0))


@pytest.mark.parametrize("fault", sorted(SESSION_FAULTS))
def test_a_relay_refusing_the_session_pauses_the_run_and_flags_nobody(
        world: World, fault: str) -> None:
    where, reply = SESSION_FAULTS[fault]
    _plan(world)
    if where == "mail":
        world.smtp.mail_reply = reply
    elif where == "rcpt":
        for addresses in world.entitled.values():
            for address in addresses:
                world.smtp.reject_rcpt[address] = reply

    def send(port: int) -> SendReport:
        return send_run(world.engine, world.org_id, world.run_id, transport=_transport(port),
                        signer=world.signer, options=FAST)

    if where == "connect":
        with refusing_server(reply) as port:
            report = send(port)
    elif where == "closed":
        with refusing_server("554 gone") as port:
            pass  # closed again: nothing listens there now
        report = send(port)
    else:
        report = send(world.smtp.port)
    assert report.stopped == "smtp_session" and report.status == "paused"
    with world.engine.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.status, outbox.c.attempts)).all()
    assert sorted(rows) == [("queued", 0)] * 4  # no message charged an attempt
    assert _bounced(world) == [] and world.smtp.accepted == []
    assert "smtp_session" in world.alert_causes()
    if reply:
        assert reply.split(" ", 1)[1][:20] in world.alert_text()
    status = control.status(world.engine, world.org_id, world.run_id)
    assert status["status"] == "paused" and len(status["undelivered"]) == 4
    assert all("SMTP settings" in str(m["next_step"]) for m in status["undelivered"])

    world.smtp.mail_reply = None  # the operator fixes the relay
    world.smtp.reject_rcpt.clear()
    assert world.send().status == "sent"
    assert_delivered_once_except(world, set())


class _RefuseAfterCanary:
    """The real client; once the canary is answered, the relay starts refusing the session."""

    def __init__(self, world: World, reply: str) -> None:
        self.inner, self.world, self.reply = world.transport(), world, reply

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        result = self.inner.send(mail_from, rcpt_to, data)
        self.world.smtp.mail_reply = self.reply
        return result

    def close(self) -> None:
        self.inner.close()


@BOTH
def test_a_session_refusal_mid_run_pauses_every_sender(which: str,
                                                       request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    _plan(world)
    reply = "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    report = send_run(world.engine, world.org_id, world.run_id,
                      transport=_RefuseAfterCanary(world, reply), signer=world.signer,
                      options=SendOptions(max_attempts=4, backoff_seconds=0.05, senders=2),
                      transport_factory=world.transport)
    assert report.stopped == "smtp_session" and report.status == "paused"
    assert sorted(_statuses(world).values()) == ["queued"] * 3 + ["sent"]
    with world.engine.begin() as conn:
        assert set(conn.execute(sa.select(outbox.c.attempts).where(
            outbox.c.status == "queued")).scalars()) == {0}
    assert _bounced(world) == [] and len(world.smtp.accepted) == 1
    world.smtp.mail_reply = None
    assert world.send().status == "sent"
    assert_delivered_once_except(world, set())


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_a_disconnect_or_slow_reply_on_a_message_of_several_recipients_is_retried_whole(
        world: World, fault: str) -> None:
    for i in range(1, 5):
        _add_billing_contact(world, f"A{i:04d}", f"ap{i}@client{i}.example")
    _plan(world)
    world.smtp.slow_seconds = 1.2  # longer than the client's 1 s timeout
    world.smtp.faults.extend([fault, fault])
    assert world.send().status == "sent"
    pairs = world.smtp.accepted_pairs()
    twice = {m for (m, _), n in pairs.items() if n > 1}
    # the test server drops a message whose connection died before its answer, so each
    # arrives once; a real server might keep it: then the retry is the same Message-ID
    assert twice == set()
    with world.engine.begin() as conn:
        attempts = sorted(conn.execute(sa.select(outbox.c.attempts)).scalars())
    assert attempts == [1, 1, 1, 3]  # the message hit twice went again, whole
    assert {r for _, r in pairs} - {(world.archive() or "").lower()} == {
        a for addresses in world.entitled.values() for a in addresses}
    assert world.wrong_deliveries() == [] and world.ledger_ok()
    assert _undelivered(world) == []
