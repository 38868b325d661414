"""Sending through a real relay: a throwaway Postfix on loopback (tests/support/postfix.py)
relaying to the test SMTP sink.

A run sent through Postfix with STARTTLS and with SMTPS reaches every entitled recipient once,
with a DKIM signature that still verifies after the relay added its headers. A relay refusing
the *session* — ``smtpd_client_restrictions = reject`` (554 naming the client) or
``smtpd_tls_security_level = encrypt`` without STARTTLS (530) — pauses the run as a
configuration problem: no message charged an attempt, no contact flagged; once the settings
are fixed, sending again delivers everything once.

Through Postfix's own SASL (Cyrus, a sasldb of its own, ``smtpd_tls_auth_only``): a run sent
with STARTTLS and AUTH arrives once with DKIM verifying; a wrong password (``535 5.7.8``) pauses
the run the same way, and after the password is fixed everything is delivered once.
"""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.config import SmtpConfig
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.send import SendReport, send_run
from sealbill.store.schema import contacts, outbox
from tests.integration.delivery.conftest import FAST, World, make_world
from tests.integration.delivery.test_delivery_faults import assert_delivered_once_except
from tests.support.postfix import (
    SASL_PASSWORD,
    SASL_USER,
    PostfixRelay,
    postfix_relay,  # noqa: F401 - pytest fixture
)

ACCOUNTS = 4


@pytest.fixture
def relayed(sqlite_engine: Engine, tmp_path: Path, postfix_relay: PostfixRelay,  # noqa: F811
            dkim_signer: DkimSigner) -> World:
    postfix_relay.reset()
    world = make_world(sqlite_engine, tmp_path, postfix_relay.sink, dkim_signer,
                       accounts=ACCOUNTS)
    if world.plan().verdict == "hold":
        world.approve()
    return world


def _send(world: World, relay: PostfixRelay, listener: str, security: str,
          password: str | None = None) -> SendReport:
    config = SmtpConfig(host="127.0.0.1", port=relay.ports[listener], security=security,
                        ca_file=relay.ca_file, timeout=10.0,
                        user=SASL_USER if password else None, password=password)
    return send_run(world.engine, world.org_id, world.run_id,
                    transport=SmtpSender(config), signer=world.signer, options=FAST)


@pytest.mark.parametrize(("listener", "security"), [("starttls", "starttls"),
                                                    ("smtps", "ssl")])
def test_a_run_through_postfix_arrives_once_with_dkim_verifying_after_the_relay(
        relayed: World, postfix_relay: PostfixRelay, dkim_signer: DkimSigner,  # noqa: F811
        listener: str, security: str) -> None:
    report = _send(relayed, postfix_relay, listener, security)
    assert report.status == "sent" and report.stopped is None
    postfix_relay.wait_for(ACCOUNTS)
    assert_delivered_once_except(relayed, set())
    record = dkim_signer.dns_txt_record().encode()
    for message in postfix_relay.sink.accepted:
        assert b"by relay.sealbill.test (Postfix)" in message.data  # really relayed
        assert "with ESMTPS" in message.data.decode("ascii", "replace")  # over TLS
        assert dkim.verify(message.data, dnsfunc=lambda name, timeout=5: record)


@pytest.mark.parametrize(("listener", "reply"), [
    ("reject", "Client host rejected"), ("encrypt", "Must issue a STARTTLS command first")])
def test_a_session_refused_by_postfix_pauses_the_run_and_resumes_after_the_fix(
        relayed: World, postfix_relay: PostfixRelay, listener: str,  # noqa: F811
        reply: str) -> None:
    report = _send(relayed, postfix_relay, listener, "none")
    assert report.stopped == "smtp_session" and report.status == "paused"
    with relayed.engine.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.status, outbox.c.attempts)).all()
        bounced = conn.execute(sa.select(contacts.c.email).where(
            contacts.c.bounced_at.is_not(None))).scalars().all()
    assert sorted(rows) == [("queued", 0)] * ACCOUNTS  # no message consumed
    assert bounced == []
    assert reply in relayed.alert_text()
    status = control.status(relayed.engine, relayed.org_id, relayed.run_id)
    assert status["status"] == "paused"
    assert all("SMTP settings" in str(m["next_step"]) for m in status["undelivered"])
    assert postfix_relay.sink.accepted == []

    assert _send(relayed, postfix_relay, "starttls", "starttls").status == "sent"
    postfix_relay.wait_for(ACCOUNTS)
    assert_delivered_once_except(relayed, set())


def _auth_listener(relay: PostfixRelay) -> None:
    if "auth" not in relay.ports:
        pytest.fail("Cyrus SASL is not installed: run `make postfix` (make test does)")


def _assert_relayed_with_dkim(relay: PostfixRelay, signer: DkimSigner) -> None:
    record = signer.dns_txt_record().encode()
    for message in relay.sink.accepted:
        text = message.data.decode("ascii", "replace")
        assert "with ESMTPSA" in text  # over TLS *and* authenticated (RFC 3848)
        assert dkim.verify(message.data, dnsfunc=lambda name, timeout=5: record)


def test_a_run_sent_with_starttls_and_auth_through_postfix_sasl_arrives_once(
        relayed: World, postfix_relay: PostfixRelay,  # noqa: F811
        dkim_signer: DkimSigner) -> None:
    _auth_listener(postfix_relay)
    report = _send(relayed, postfix_relay, "auth", "starttls", password=SASL_PASSWORD)
    assert report.status == "sent" and report.stopped is None
    postfix_relay.wait_for(ACCOUNTS)
    assert_delivered_once_except(relayed, set())
    _assert_relayed_with_dkim(postfix_relay, dkim_signer)
    assert postfix_relay.log_shows(f"sasl_username={SASL_USER}"), postfix_relay.log()[-2000:]


def test_a_wrong_password_at_postfix_pauses_the_run_and_the_fixed_one_delivers_once(
        relayed: World, postfix_relay: PostfixRelay,  # noqa: F811
        dkim_signer: DkimSigner) -> None:
    _auth_listener(postfix_relay)
    report = _send(relayed, postfix_relay, "auth", "starttls", password="wrong-password")
    assert report.stopped == "smtp_session" and report.status == "paused"
    with relayed.engine.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.status, outbox.c.attempts)).all()
        bounced = conn.execute(sa.select(contacts.c.email).where(
            contacts.c.bounced_at.is_not(None))).scalars().all()
    assert sorted(rows) == [("queued", 0)] * ACCOUNTS  # no message consumed
    assert bounced == []
    assert "535" in relayed.alert_text()
    # Postfix refused it, not sealbill:
    assert postfix_relay.log_shows("authentication failed"), postfix_relay.log()[-2000:]
    assert postfix_relay.sink.accepted == []

    fixed = _send(relayed, postfix_relay, "auth", "starttls", password=SASL_PASSWORD)
    assert fixed.status == "sent"
    postfix_relay.wait_for(ACCOUNTS)
    assert_delivered_once_except(relayed, set())
    _assert_relayed_with_dkim(postfix_relay, dkim_signer)
