"""Contact verification: a code mailed to the address, single use, expiring, bound to the
address; or an operator confirmation with a reason. Every step is in contact_events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
import sqlalchemy as sa

from sealbill.pipeline.parties import verify
from sealbill.store.parties import records as parties
from sealbill.store.parties import verification as tokens
from sealbill.store.schema import accounts, contact_events, contact_links, verification_tokens
from tests.integration.delivery.conftest import World

KEY = b"k" * 32


def _pending_contact(world: World) -> int:
    with world.engine.begin() as conn:
        cid = parties.add_contact(conn, world.org_id, "new@client1.example", actor="ops")
        parties.link_contact(conn, world.org_id, cid, world.scenario.account_ids["A0001"],
                             "billing", actor="ops")
    return cid


def _status(world: World, cid: int) -> str:
    with world.engine.begin() as conn:
        return str(conn.execute(sa.select(contact_links.c.status).where(
            contact_links.c.contact_id == cid)).scalar_one())


def test_a_mailed_code_verifies_once(world: World) -> None:
    cid = _pending_contact(world)
    started = verify.start(world.engine, world.org_id, "new@client1.example", "A0001",
                           actor="ops", transport=world.transport(), signer=None, key=KEY)
    assert [m.rcpt_tos for m in world.smtp.accepted] == [("new@client1.example",)]
    body = message_from_bytes(world.smtp.accepted[0].data, policy=default)
    text = body.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    code = re.search(r"Code ?: ([\w-]+\.[0-9a-f]+)", text)
    assert code is not None and started.contact_id == cid
    assert "http" not in text  # no verification page configured: no link to nowhere
    with world.engine.begin() as conn:  # only the hash of the code is stored
        stored = conn.execute(sa.select(verification_tokens.c.token_hash)).scalars().all()
    assert code.group(1) not in str(stored)
    verify.confirm(world.engine, world.org_id, code.group(1), actor="customer",
                   key=KEY)
    assert _status(world, cid) == "verified"
    with pytest.raises(verify.VerificationError, match="already used"):
        verify.confirm(world.engine, world.org_id, code.group(1), actor="x", key=KEY)
    with world.engine.begin() as conn:
        events = conn.execute(sa.select(contact_events.c.event, contact_events.c.method).where(
            contact_events.c.contact_id == cid).order_by(contact_events.c.id)).all()
    assert [tuple(e) for e in events][-3:] == [("verification_sent", "email_token"),
                                                ("verified", "email_token"),
                                                ("verification_refused", "email_token")]


def test_expired_forged_or_readdressed_codes_are_refused(world: World) -> None:
    cid = _pending_contact(world)
    account = world.scenario.account_ids["A0001"]
    with world.engine.begin() as conn:
        old, _ = tokens.issue(conn, world.org_id, cid, account, KEY,
                              now=datetime.now(UTC) - timedelta(days=3))
    with pytest.raises(verify.VerificationError, match=r"revoked|expired"):
        verify.confirm(world.engine, world.org_id, old, actor="x", key=KEY)
    with world.engine.begin() as conn:
        code, _ = tokens.issue(conn, world.org_id, cid, account, KEY)
    with pytest.raises(verify.VerificationError, match="does not match"):
        verify.confirm(world.engine, world.org_id, code, actor="x", key=b"another key")
    with world.engine.begin() as conn:
        parties.change_contact_email(conn, world.org_id, cid, "other@client1.example",
                                     actor="ops")
    with pytest.raises(verify.VerificationError, match="current address"):
        verify.confirm(world.engine, world.org_id, code, actor="x", key=KEY)
    assert _status(world, cid) == "pending"


def test_operator_confirmation_needs_a_reason(world: World) -> None:
    cid = _pending_contact(world)
    with pytest.raises(verify.VerificationError, match="reason"):
        verify.operator_confirm(world.engine, world.org_id, "new@client1.example", "A0001",
                                actor="ops", reason=" ")
    verify.operator_confirm(world.engine, world.org_id, "new@client1.example", "A0001",
                            actor="ops", reason="confirmed by phone, ticket 42")
    assert _status(world, cid) == "verified"


def test_the_mail_links_to_the_configured_page_in_both_languages(world: World) -> None:
    _pending_contact(world)
    verify.start(world.engine, world.org_id, "new@client1.example", "A0001", actor="ops",
                 transport=world.transport(), signer=None, key=KEY,
                 link_base="https://billing.acme-cloud.example/verify")
    mail = message_from_bytes(world.smtp.accepted[0].data, policy=default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    code = re.search(r"Code ?: ([\w-]+\.[0-9a-f]+)", text)
    assert code is not None
    assert f"https://billing.acme-cloud.example/verify?code={code.group(1)}" in text
    with world.engine.begin() as conn:
        locale = conn.execute(sa.select(accounts.c.locale).where(
            accounts.c.id == world.scenario.account_ids["A0001"])).scalar_one()
    french, english = text.index("Pour recevoir"), text.index("To receive")
    assert (french < english) == (locale == "fr")  # the account's language first
    assert "A0001" in str(mail["Subject"]) and "Confirmez" in str(mail["Subject"])
