"""The application-layer use cases behind the portal and the console, on SQLite and
PostgreSQL, without a browser: portal sessions, magic links, one account per portal session,
"not for me" reports and who may open an incident from one."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path
from urllib.parse import unquote

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import misdelivery, operators, portal, sessions, webhooks
from sealbill.app.context import Actor, local_actor
from sealbill.app.errors import Forbidden, NotFound, Unauthenticated
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.store import portal_sessions
from sealbill.store.schema import alerts, contacts, webhook_messages
from sealbill.store.schema import portal_sessions as sessions_table
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

KEY = b"k" * 32
PASSWORD = "a long enough password"


def operator(engine: Engine, org_id: int, slug: str, name: str, role: str) -> Actor:
    """A new operator with ``role`` in the organization, as their console session acts."""
    made = operators.create_operator(engine, local_actor(), f"{name}@ops.example", name,
                                     PASSWORD)
    sessions.grant(engine, local_actor(), org_id, f"{name}@ops.example", role)
    _, actor = sessions.sign_in(engine, f"{name}@ops.example", PASSWORD,
                                pyotp.TOTP(made["totp_secret"]).now(), slug)
    return actor


def test_a_session_expires_when_idle_and_ends_for_good(any_engine: Engine,
                                                        tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    contact, account = next(iter(s.contact_ids.values())), next(iter(s.account_ids.values()))
    secret = portal_sessions.create(any_engine, org_id=s.org_id, contact_id=contact,
                                    account_id=account)
    live = portal_sessions.load(any_engine, secret)
    assert live is not None and (live.contact_id, live.account_id) == (contact, account)
    with any_engine.begin() as conn:
        conn.execute(sa.update(sessions_table).values(
            last_seen_at=datetime.now(UTC) - portal_sessions.IDLE - timedelta(seconds=1)))
    assert portal_sessions.load(any_engine, secret) is None
    fresh = portal_sessions.create(any_engine, org_id=s.org_id, contact_id=contact,
                                   account_id=account)
    session = portal_sessions.load(any_engine, fresh)
    assert session is not None
    portal_sessions.end(any_engine, session.id)
    assert portal_sessions.load(any_engine, fresh) is None
    assert portal_sessions.load(any_engine, "made-up") is None


def test_magic_link_opens_one_account_once_and_never_another_accounts_documents(
        any_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path)

    def transport() -> SmtpSender:
        return SmtpSender(SmtpConfig(host=smtp_server.host, port=smtp_server.port))

    assert portal.request_link(any_engine, s.org_slug, "nobody@nowhere.example",
                               portal_base="https://b.example", transport=transport,
                               key=KEY) == 0
    for sent in (1, 0):  # asked twice in a row: one mail
        assert portal.request_link(any_engine, s.org_slug, "billing1@client1.example",
                                   portal_base="https://b.example", transport=transport,
                                   key=KEY) == sent
    assert len(smtp_server.received) == 1
    message = email.message_from_bytes(smtp_server.received[-1].data, policy=default)
    assert message["To"] == "billing1@client1.example"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    code = re.search(r"enter\?code=(\S+)", text).group(1)  # type: ignore[union-attr]

    contact_id, account_id = portal.redeem_link(any_engine, s.org_id, unquote(code), KEY)
    assert account_id == s.account_ids["A0001"]
    with pytest.raises(Unauthenticated):
        portal.redeem_link(any_engine, s.org_id, unquote(code), KEY)
    user = portal.portal_user(any_engine, s.org_id, contact_id, account_id)
    mine = portal.documents(any_engine, user)
    assert mine and all(d["number"] for d in mine)
    name, pdf = portal.document(any_engine, user, mine[0]["id"], "pdf")
    assert name.endswith(".pdf")
    assert pdf.startswith(b"%PDF")
    from sealbill.app import invoices

    theirs = invoices.list_invoices(any_engine, local_actor(), s.org_id, account="A0002")
    with pytest.raises(NotFound):
        portal.document(any_engine, user, theirs["items"][0]["id"], "pdf")


def test_not_for_me_report_alerts_and_only_allowed_roles_open_an_incident(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    token = misdelivery.signed_token(any_engine, s.org_id, s.invoice_ids[0], KEY)
    with pytest.raises(NotFound):
        misdelivery.report(any_engine, s.org_id, token[:-2] + "00", KEY)
    report_id = misdelivery.report(any_engine, s.org_id, token, KEY, "not mine")
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(alerts.c.cause)).scalars().all() == [
            "misdelivery_report"]
    reader = operator(any_engine, s.org_id, s.org_slug, "erin", "read-only")
    approver = operator(any_engine, s.org_id, s.org_slug, "finn", "approver")
    with pytest.raises(Forbidden):
        misdelivery.open_incident(any_engine, reader, s.org_id, report_id)
    webhooks.add_endpoint(any_engine, local_actor(), s.org_id, "http://127.0.0.1:9/hook",
                          ["incident.opened"], allow_loopback=True)
    incident = misdelivery.open_incident(any_engine, approver, s.org_id, report_id)
    assert misdelivery.reports(any_engine, reader, s.org_id)[0]["incident_id"] == incident
    with any_engine.begin() as conn:  # queued for the subscribed endpoint
        payload = conn.execute(sa.select(webhook_messages.c.payload)).scalar_one()
    assert payload["type"] == "incident.opened" and payload["data"]["incident"] == incident
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar() == 1
