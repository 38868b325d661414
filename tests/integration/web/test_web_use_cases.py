"""The application-layer use cases behind the portal and the console, on SQLite and
PostgreSQL, without a browser: portal sessions, magic links, one account per portal session,
"not for me" reports and who may open an incident from one."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import ids, misdelivery, operators, portal, sessions, webhooks
from sealbill.app.context import Actor, local_actor
from sealbill.app.errors import Forbidden, NotFound, Unauthenticated
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.store.parties import portal_sessions
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
    with any_engine.begin() as conn:  # the same public id as the API's incidents
        public = ids.encode(conn, s.org_id, "incident", incident)
    assert payload["type"] == "incident.opened" and payload["data"]["incident_id"] == public
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar() == 1


def test_a_confirmed_not_for_me_report_queues_the_misdelivery_webhook_with_the_report(
        any_engine: Engine, tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    webhooks.add_endpoint(any_engine, local_actor(), s.org_id, "http://127.0.0.1:9/hook",
                          ["misdelivery.reported"], allow_loopback=True)
    token = misdelivery.signed_token(any_engine, s.org_id, s.invoice_ids[0], KEY)
    with pytest.raises(NotFound):  # a forged link records nothing, queues nothing
        misdelivery.report(any_engine, s.org_id, token[:-2] + "00", KEY)
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_messages)
                            ).scalar() == 0
    report_id = misdelivery.report(any_engine, s.org_id, token, KEY, "I am not this client")
    with any_engine.begin() as conn:
        row = conn.execute(sa.select(webhook_messages)).one()
        alert_id = conn.execute(sa.select(alerts.c.id)).scalar_one()
    assert row.event_type == "misdelivery.reported"
    assert row.event_key == f"misdelivery:{report_id}"
    data = row.payload["data"]
    assert data["report"] == report_id and data["alert"] == alert_id
    assert data["invoice"].startswith("F-")
    assert "I am not this client" not in str(row.payload)  # the reporter's words stay inside


def test_a_message_is_set_aside_only_by_an_approver_with_a_reason_and_audited(
        any_engine: Engine, tmp_path: Path) -> None:
    from sealbill.app import message_actions
    from sealbill.app.errors import Invalid
    from sealbill.pipeline.delivery.plan import plan_run
    from sealbill.store.schema import audit_log, outbox

    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=True)
    plan_run(any_engine, s.org_id, s.run_id, actor="test-runner")
    reader = operator(any_engine, s.org_id, s.org_slug, "gina", "read-only")
    billing = operator(any_engine, s.org_id, s.org_slug, "hugo", "billing")
    approver = operator(any_engine, s.org_id, s.org_slug, "ines", "approver")
    with any_engine.begin() as conn:
        run = message_actions.ids.encode(conn, s.org_id, "run", s.run_id)
    for who in (reader, billing):
        with pytest.raises(Forbidden):
            message_actions.set_aside(any_engine, who, s.org_id, run, "F-000001", "why not")
    with pytest.raises(Unauthenticated):
        message_actions.set_aside(any_engine, local_actor("web"), s.org_id, run, "F-000001",
                                  "no key, no console session")
    with pytest.raises(Invalid) as refused:
        message_actions.set_aside(any_engine, approver, s.org_id, run, "F-000001", " ")
    assert [p.field for p in refused.value.problems] == ["reason"]
    with pytest.raises(NotFound):  # another organization's operator finds no such run
        message_actions.set_aside(any_engine, approver, s.org_id + 1000, run, "F-000001",
                                  "wrong organization")
    done = message_actions.set_aside(any_engine, approver, s.org_id, run, "F-000001",
                                     "customer asked for a paper copy only")
    assert done["run_id"] == run and done["invoice"] == "F-000001"
    with any_engine.begin() as conn:
        states = sorted(conn.execute(sa.select(outbox.c.status)).scalars())
        entry = conn.execute(sa.select(audit_log).where(
            audit_log.c.action == "run.set_aside")).one()
    assert states == ["queued", "set_aside"]
    assert entry.actor == "operator:ines@ops.example"
    assert entry.after["reason"] == "customer asked for a paper copy only"


def _sent_scenario(engine: Engine, tmp_path: Path, smtp: SmtpCapture) -> tuple[Any, str]:
    """Two accounts whose first run was sent (the ledger has a row per invoice)."""
    from sealbill.pipeline.delivery.plan import plan_run
    from sealbill.pipeline.delivery.send import SendOptions, send_run

    s = build_scenario(engine, accounts=2, files_dir=tmp_path, render=True)
    plan_run(engine, s.org_id, s.run_id, actor="test-runner")
    send_run(engine, s.org_id, s.run_id, signer=None,
             transport=SmtpSender(SmtpConfig(host=smtp.host, port=smtp.port)),
             options=SendOptions(max_attempts=1, backoff_seconds=0.01))
    return s, s.org_slug


def test_an_incident_opens_on_exactly_the_messages_of_a_ledger_search_and_only_widens(
        any_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    from sealbill.app import incident_open
    from sealbill.app.errors import Invalid
    from sealbill.store.schema import delivery_ledger, incident_events, incidents

    s, slug = _sent_scenario(any_engine, tmp_path, smtp_server)
    approver = operator(any_engine, s.org_id, slug, "jon", "approver")
    billing = operator(any_engine, s.org_id, slug, "kim", "billing")
    with any_engine.begin() as conn:
        by_account = {r.account_reference: r.message_id for r in conn.execute(
            sa.select(delivery_ledger))}
        recipient = conn.execute(sa.select(delivery_ledger.c.recipients).where(
            delivery_ledger.c.account_reference == "A0001")).scalar_one()[0]["email"]
    with pytest.raises(Invalid) as refused:  # part of an address matches nothing
        incident_open.open_from_ledger(
            any_engine, approver, s.org_id, title="t", description="",
            aware_at=datetime.now(UTC).isoformat(), search={"address": recipient[:-3]})
    assert [p.field for p in refused.value.problems] == ["address"]
    incident = incident_open.open_from_ledger(
        any_engine, billing, s.org_id, title="Wrong address", description="one customer",
        aware_at=datetime.now(UTC).isoformat(), search={"address": recipient.upper()})
    with any_engine.begin() as conn:
        scope = conn.execute(sa.select(incidents.c.scope)).scalar_one()
    assert scope["message_ids"] == [by_account["A0001"]]
    with pytest.raises(Invalid):  # nothing new: refused, nothing written
        incident_open.widen(any_engine, approver, s.org_id, incident,
                            search={"account": "A0001"}, reason="same again")
    done = incident_open.widen(any_engine, approver, s.org_id, incident,
                               search={"account": "A0002"}, reason="same clerk")
    assert done == {"added": 1, "messages": 2}
    assert incident_open.revoke_tokens(any_engine, approver, s.org_id, incident) == 0
    with any_engine.begin() as conn:
        scope = conn.execute(sa.select(incidents.c.scope)).scalar_one()
        events = conn.execute(sa.select(incident_events.c.event).order_by(
            incident_events.c.id)).scalars().all()
    assert sorted(scope["message_ids"]) == sorted(by_account.values())
    assert events == ["opened", "updated", "scope_changed", "tokens_revoked"]
    reader = operator(any_engine, s.org_id, slug, "lou", "read-only")
    for use_case in (incident_open.revoke_tokens, incident_open.rotate):
        with pytest.raises(Forbidden):
            use_case(any_engine, reader, s.org_id, incident)


def test_vouching_needs_an_admin_other_than_who_entered_the_address(
        any_engine: Engine, tmp_path: Path) -> None:
    from sealbill.app import contact_vouch
    from sealbill.app import contacts as contact_cases
    from sealbill.app.errors import Invalid

    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    first = operator(any_engine, s.org_id, s.org_slug, "max", "admin")
    second = operator(any_engine, s.org_id, s.org_slug, "nia", "admin")
    billing = operator(any_engine, s.org_id, s.org_slug, "oto", "billing")
    contact_cases.add(any_engine, first, s.org_id, "A0001",
                      {"email": "cfo@client1.example", "role": "billing"})
    with pytest.raises(Forbidden):
        contact_vouch.vouch(any_engine, billing, s.org_id, "cfo@client1.example", "A0001",
                            method="phone", evidence="called the known number")
    with pytest.raises(Forbidden):
        contact_vouch.vouch(any_engine, first, s.org_id, "cfo@client1.example", "A0001",
                            method="phone", evidence="called the known number")
    with pytest.raises(Invalid) as refused:
        contact_vouch.vouch(any_engine, second, s.org_id, "cfo@client1.example", "A0001",
                            method="telepathy", evidence="")
    assert sorted(p.field for p in refused.value.problems) == ["evidence", "method"]
    with pytest.raises(NotFound):
        contact_vouch.vouch(any_engine, second, s.org_id, "nobody@client1.example", "A0001",
                            method="phone", evidence="called the known number")
    done = contact_vouch.vouch(any_engine, second, s.org_id, "cfo@client1.example", "A0001",
                               method="phone", evidence="called the known number")
    [link] = [x for x in done["links"] if x["account"] == "A0001"]
    assert (link["status"], link["verification_method"]) == ("verified", "operator")


def test_every_failed_message_of_a_run_is_queued_again_by_an_approver_and_audited(
        any_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    from collections import deque

    from sealbill.app import message_actions
    from sealbill.app.errors import Invalid, StateError
    from sealbill.store.schema import audit_log, outbox

    smtp_server.faults = deque(["accept", "5xx"])  # the server refuses the second message
    s, slug = _sent_scenario(any_engine, tmp_path, smtp_server)
    with any_engine.begin() as conn:
        assert sorted(conn.execute(sa.select(outbox.c.status)).scalars()) == [
            "failed_permanent", "sent"]
        run = message_actions.ids.encode(conn, s.org_id, "run", s.run_id)
    billing = operator(any_engine, s.org_id, slug, "pia", "billing")
    approver = operator(any_engine, s.org_id, slug, "quin", "approver")
    with pytest.raises(Forbidden):
        message_actions.retry_failed(any_engine, billing, s.org_id, run, "relay fixed")
    with pytest.raises(Invalid):
        message_actions.retry_failed(any_engine, approver, s.org_id, run, "")
    done = message_actions.retry_failed(any_engine, approver, s.org_id, run, "relay fixed")
    assert len(done["queued"]) == 1 and done["skipped"] == []
    with any_engine.begin() as conn:
        assert sorted(conn.execute(sa.select(outbox.c.status)).scalars()) == ["queued", "sent"]
        assert conn.execute(sa.select(audit_log.c.actor).where(
            audit_log.c.action == "run.retry")).scalar_one() == "operator:quin@ops.example"
    with pytest.raises(StateError):
        message_actions.retry_failed(any_engine, approver, s.org_id, run, "once more")
