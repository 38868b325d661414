"""Bounces mailed back after the send (RFC 3464 DSNs, Postfix-style samples in tests/data/dsn)
and an operator clearing a bounce.

The samples are real-shaped Postfix reports; each test swaps their Message-ID and recipient for
those of a message the run really sent through the test SMTP server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sealbill.app import bounces
from sealbill.app.context import local_actor
from sealbill.app.errors import StateError
from sealbill.cli import app as cli
from sealbill.pipeline.delivery import control
from sealbill.store.parties import contact_log
from sealbill.store.schema import (
    audit_log,
    contact_events,
    contacts,
    delivery_envelopes,
    invoices,
    outbox,
)
from tests.integration.delivery.conftest import World

SAMPLES = Path(__file__).parents[2] / "data" / "dsn"
SAMPLE_ID, SAMPLE_RCPT = "<inv-1.env-1@acme-cloud.example>", "ap@client1.example"


def _sent(world: World) -> dict[str, str]:
    """Plan and send the run; account reference -> Message-ID of its invoice."""
    if world.plan().verdict == "hold":
        world.approve()
    assert world.send().status == "sent"
    with world.engine.begin() as conn:
        return {str(ref): str(mid) for ref, mid in conn.execute(
            sa.select(invoices.c.account_reference, outbox.c.message_id)
            .join(delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id)
            .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
            .where(outbox.c.run_id == world.run_id))}


def _dsn(sample: str, message_id: str, recipient: str) -> bytes:
    text = (SAMPLES / sample).read_text(encoding="utf-8")
    return text.replace(SAMPLE_ID, message_id).replace(SAMPLE_RCPT, recipient).encode()


def _import(world: World, *mails: tuple[str, bytes]) -> dict[str, Any]:
    return bounces.import_dsns(world.engine, local_actor(), world.org_id, list(mails))


def _bounced(world: World) -> list[str]:
    with world.engine.begin() as conn:
        return sorted(conn.execute(sa.select(contacts.c.email).where(
            contacts.c.organization_id == world.org_id,
            contacts.c.bounced_at.is_not(None))).scalars())


def _history(world: World, email: str) -> list[tuple[str, str | None, str | None]]:
    with world.engine.begin() as conn:
        return [(str(e), m, r) for e, m, r in conn.execute(
            sa.select(contact_events.c.event, contact_events.c.method, contact_events.c.reason)
            .join(contacts, contacts.c.id == contact_events.c.contact_id)
            .where(contacts.c.email == email).order_by(contact_events.c.seq))]


def _outcome(world: World, message_id: str, address: str) -> tuple[str, dict[str, Any]]:
    with world.engine.begin() as conn:
        status, outcomes = conn.execute(sa.select(outbox.c.status, outbox.c.recipient_outcomes)
                                        .where(outbox.c.message_id == message_id)).one()
    return str(status), dict((outcomes or {}).get(address) or {})


def _audit(world: World, action: str) -> list[Any]:
    with world.engine.begin() as conn:
        return list(conn.execute(sa.select(audit_log.c.object_id, audit_log.c.after)
                                 .where(audit_log.c.action == action)).all())


def test_a_permanent_failure_dsn_flags_the_contact_it_was_sent_to_once(world: World) -> None:
    sent = _sent(world)
    address, message_id = "billing1@client1.example", sent["A0001"]
    mail = ("bounce-1.eml", _dsn("postfix_5xx_user_unknown.eml", message_id, address))
    result = _import(world, mail)
    assert result["bounced"] == 1 and result["results"][0]["invoice"]
    assert _bounced(world) == [address]
    status, outcome = _outcome(world, message_id, address)
    assert status == "sent"  # the relay took it: the ledger row and the claims stand
    assert outcome["state"] == "bounced" and outcome["stage"] == "dsn"
    assert outcome["status"] == "5.1.1" and outcome["code"] == 550
    assert outcome["relay_state"] == "delivered"
    events = _history(world, address)
    assert events[-1][:2] == ("bounced", "dsn") and "5.1.1" in str(events[-1][2])
    assert [row.object_id for row in _audit(world, "message.dsn")] == [message_id]
    [undelivered] = control.status(world.engine, world.org_id, world.run_id)["undelivered"]
    assert undelivered["recipient"] == address
    assert undelivered["recipient_state"] == "bounced"
    assert "DSN" in undelivered["next_step"]
    again = _import(world, mail)
    assert again["already_recorded"] == 1 and again["bounced"] == 0
    assert len(_history(world, address)) == len(events)
    with world.engine.begin() as conn:
        assert contact_log.verify(conn, world.org_id).ok


def test_a_dsn_for_an_address_not_sent_that_message_or_an_unknown_message_changes_nothing(
        world: World) -> None:
    sent = _sent(world)
    other_contact = "billing2@client2.example"  # a contact, but of another invoice
    stranger = _dsn("postfix_5xx_user_unknown.eml", sent["A0001"], other_contact)
    unknown = _dsn("postfix_5xx_user_unknown.eml", "<inv-999.env-999@acme-cloud.example>",
                   "billing1@client1.example")
    not_dsn = (SAMPLES / "out_of_office.eml").read_bytes()
    with world.engine.begin() as conn:
        before = conn.execute(sa.select(outbox.c.recipient_outcomes)
                              .order_by(outbox.c.id)).scalars().all()
    result = _import(world, ("a", stranger), ("b", unknown), ("c", not_dsn))
    assert [r["result"] for r in result["results"]] == [
        "not_sent_to_that_address", "unknown_message", "not_a_dsn"]
    assert other_contact in result["results"][0]["detail"]
    assert _bounced(world) == [] and _audit(world, "message.dsn") == []
    with world.engine.begin() as conn:
        assert conn.execute(sa.select(outbox.c.recipient_outcomes)
                            .order_by(outbox.c.id)).scalars().all() == before


def test_a_delay_dsn_is_recorded_only(world: World) -> None:
    sent = _sent(world)
    address = "billing3@client3.example"
    result = _import(world, ("d", _dsn("postfix_4xx_delayed.eml", sent["A0003"], address)))
    assert result["delayed_recorded"] == 1 and result["bounced"] == 0
    assert _bounced(world) == []
    status, outcome = _outcome(world, sent["A0003"], address)
    assert status == "sent" and outcome["state"] == "delivered"
    assert outcome["dsn"]["status"] == "4.2.2" and outcome["dsn"]["action"] == "delayed"
    assert control.status(world.engine, world.org_id, world.run_id)["undelivered"] == []


def test_the_cli_reads_a_maildir_and_an_operator_clears_the_bounce(world: World,
                                                                  tmp_path: Path) -> None:
    sent = _sent(world)
    address = "billing2@client2.example"
    maildir = tmp_path / "Maildir"
    for name in ("new", "cur", "tmp"):
        (maildir / name).mkdir(parents=True)
    (maildir / "new" / "1.relay:2,").write_bytes(
        _dsn("postfix_full_message_returned.eml", sent["A0002"], address).replace(
            b"compta@client1.example", address.encode()))
    (maildir / "cur" / "2.relay:2,S").write_bytes((SAMPLES / "out_of_office.eml").read_bytes())
    db = ["--db", world.engine.url.render_as_string(hide_password=False), "--org", "acme-cloud"]
    runner = CliRunner()
    done = runner.invoke(cli, ["bounces", "import", "--maildir", str(maildir), "--json", *db])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert (report["mails"], report["bounced"], report["not_a_dsn"]) == (2, 1, 1)
    assert _bounced(world) == [address]
    refused = runner.invoke(cli, ["contacts", "clear-bounce", "billing1@client1.example",
                                  "--reason", "never bounced", *db])
    assert refused.exit_code != 0 and "not flagged" in refused.output
    cleared = runner.invoke(cli, ["contacts", "clear-bounce", address, "--reason",
                                  "mailbox re-enabled (phone call)", "--json", *db])
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.output)["bounced_at"] is None
    assert _bounced(world) == []
    assert _history(world, address)[-1] == ("bounce_cleared", "operator",
                                            "mailbox re-enabled (phone call)")
    [(_, after)] = _audit(world, "contact.clear_bounce")
    assert after["reason"] == "mailbox re-enabled (phone call)"
    with world.engine.begin() as conn:
        assert contact_log.verify(conn, world.org_id).ok


def test_clearing_a_contact_that_is_not_bounced_writes_nothing(world: World) -> None:
    _sent(world)
    with pytest.raises(StateError):
        bounces.clear_bounce(world.engine, local_actor(), world.org_id,
                             "billing1@client1.example", {"reason": "just in case"})
    assert _audit(world, "contact.clear_bounce") == []
