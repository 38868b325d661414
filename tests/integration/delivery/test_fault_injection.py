"""Faults injected *before* the guard (plan builder, MIME builder, data), never into the guard.

Each runs a full delivery against a real SMTP server; for each: zero messages reach a wrong
recipient, the run halts or holds, and the alert names the cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail import mime
from sealbill.mail.dkim import DkimSigner
from sealbill.pipeline.delivery import compose, plan
from sealbill.store.db import inserted_id
from sealbill.store.delivery import plans as plan_store
from sealbill.store.parties import records as parties
from sealbill.store.parties.address_rules import AddressRefused
from sealbill.store.parties.records import Recipient
from sealbill.store.schema import contact_links, contacts, documents
from tests.integration.delivery.conftest import World, make_world, second_cycle
from tests.support.smtp import SmtpCapture


def _send_through(world: World) -> Any:
    """Plan; if held, approve (a reviewer waving it through); send. Returns the send report."""
    result = world.plan()
    if result.verdict == "hold":
        world.approve()
    return world.send()


def per_account(lookup: Callable[[Any, int, int], list[Recipient]]
                ) -> Callable[[Any, int, Sequence[int]], dict[int, list[Recipient]]]:
    """The plan's batched recipient seam, answered by a faulty per-account lookup."""
    return lambda conn, org_id, account_ids: {
        account_id: lookup(conn, org_id, account_id) for account_id in account_ids}


def _assert_stopped(world: World, *, cause: str, status: str = "halted") -> None:
    assert world.wrong_deliveries() == []
    assert world.run_status() == status
    assert cause in world.alert_text(), world.alert_text()
    assert world.ledger_ok()


def test_recipient_list_not_cleared_between_iterations(world: World,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[Recipient] = []
    real = parties.verified_billing_recipients

    def leaky(conn: Any, org_id: int, account_id: int) -> list[Recipient]:
        kept.extend(real(conn, org_id, account_id))  # the bug: never reset
        return list(kept)

    monkeypatch.setattr(plan, "resolve_recipients", per_account(leaky))
    _send_through(world)
    _assert_stopped(world, cause="not now a verified billing contact")


def test_mime_builder_accumulating_recipients(world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[Recipient] = []
    real = mime.build_message

    def leaky(**kwargs: Any) -> mime.Outgoing:
        kept.extend(kwargs["recipients"])
        return real(**{**kwargs, "recipients": list(kept)})

    monkeypatch.setattr(mime, "build_message", leaky)
    _send_through(world)
    _assert_stopped(world, cause="To: differs")


def test_invoice_account_mis_join(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = plan_store.run_invoices

    def mis_joined(conn: Any, org_id: int, run_id: int, **chunk: Any) -> list[dict[str, Any]]:
        rows = [dict(r) for r in real(conn, org_id, run_id, **chunk)]
        accounts = [r["account_id"] for r in rows]
        for row, account_id in zip(rows, accounts[1:] + accounts[:1], strict=True):
            row["account_id"] = account_id  # a join that slipped by one row
        return rows

    monkeypatch.setattr(plan_store, "run_invoices", mis_joined)
    _send_through(world)
    _assert_stopped(world, cause="the invoice belongs to another account")


def test_off_by_one_recipient_lookup(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = parties.verified_billing_recipients
    ids = sorted(world.scenario.account_ids.values())

    def off_by_one(conn: Any, org_id: int, account_id: int) -> list[Recipient]:
        return real(conn, org_id, ids[(ids.index(account_id) + 1) % len(ids)])

    monkeypatch.setattr(plan, "resolve_recipients", per_account(off_by_one))
    _send_through(world)
    _assert_stopped(world, cause="not now a verified billing contact")


def test_stale_contact_mapping_after_a_contact_moved(world: World) -> None:
    world.plan()  # the plan is the "cache": built before the move
    a1, a2 = world.scenario.account_ids["A0001"], world.scenario.account_ids["A0002"]
    with world.engine.begin() as conn:
        cid = world.scenario.contact_ids["billing1@client1.example"]
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == cid, contact_links.c.account_id == a1)).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                reason="left the company")
        new = parties.link_contact(conn, world.org_id, cid, a2, "billing", actor="ops")
        parties.set_link_status(conn, world.org_id, new, "verified", actor="ops",
                                method="operator", reason="moved")
    world.entitled["A0002"].add("billing1@client1.example")
    world.entitled["A0001"].discard("billing1@client1.example")
    world.send()
    assert "billing1@client1.example" not in world.smtp.all_recipients() or all(
        "A0002" in w for w in world.wrong_deliveries())
    _assert_stopped(world, cause="not now a verified billing contact")


def test_shared_mutable_state_across_workers(pg_engine: Engine, tmp_path: Path,
                                             smtp_server: SmtpCapture, dkim_signer: DkimSigner,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL: two senders really run at once (SQLite would serialize their transactions).
    first = make_world(pg_engine, tmp_path, smtp_server, dkim_signer, slug="first-org")
    second = make_world(pg_engine, tmp_path, smtp_server, dkim_signer, slug="second-org")
    second.entitled = {k: {e.replace("@client", "@second-client") for e in v}
                       for k, v in first.entitled.items()}
    with pg_engine.begin() as conn:  # give the second org distinct customer addresses
        for email, cid in second.scenario.contact_ids.items():
            conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(
                email=email.replace("@client", "@second-client")))
        conn.execute(sa.text("UPDATE contact_events SET new_value = REPLACE(new_value, "
                             "'@client', '@second-client') WHERE organization_id = :o"),
                     {"o": second.org_id})
    shared: dict[str, Any] = {}  # the bug: one "current message" for every worker
    real = mime.build_message

    def racy(**kwargs: Any) -> mime.Outgoing:
        shared["recipients"] = kwargs["recipients"]
        time.sleep(0.02)
        return real(**{**kwargs, "recipients": shared["recipients"]})

    monkeypatch.setattr(mime, "build_message", racy)
    first.plan()
    second.plan()
    threads = [threading.Thread(target=w.send) for w in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in (first, second):
        assert w.wrong_deliveries() == []
        assert w.ledger_ok()
    assert "halted" in (first.run_status(), second.run_status())


def test_template_rendered_with_another_accounts_data(world: World) -> None:
    ids = world.scenario.invoice_ids
    with world.engine.begin() as conn:
        other = {k: (p, s) for k, p, s in conn.execute(
            sa.select(documents.c.kind, documents.c.path, documents.c.sha256).where(
                documents.c.invoice_id == ids[1]))}
        for kind in ("html", "text", "txt"):
            if kind in other:
                conn.execute(sa.update(documents).where(
                    documents.c.invoice_id == ids[0], documents.c.kind == kind).values(
                    path=other[kind][0], sha256=other[kind][1]))
    _send_through(world)
    _assert_stopped(world, cause="another account's identifier")


@pytest.mark.parametrize("variant", ["pending_link_used", "verified_behind_our_back"])
def test_unverified_or_placeholder_address(world: World, monkeypatch: pytest.MonkeyPatch,
                                           variant: str) -> None:
    account = world.scenario.account_ids["A0001"]
    with pytest.raises(AddressRefused), world.engine.begin() as conn:
        parties.add_contact(conn, world.org_id, "test@example.com", actor="staff")
    with world.engine.begin() as conn:  # the same rows written another way (a raw import)
        placeholder = inserted_id(conn.execute(sa.insert(contacts).values(
            organization_id=world.org_id, email="test@example.com", name="",
            created_at=datetime.now(UTC))))
        link = inserted_id(conn.execute(sa.insert(contact_links).values(
            organization_id=world.org_id, contact_id=placeholder, account_id=account,
            role="billing", status="pending", status_changed_at=datetime.now(UTC),
            status_changed_by="staff")))
        if variant == "verified_behind_our_back":
            conn.execute(sa.update(contact_links).where(contact_links.c.id == link)
                         .values(status="verified"))
    if variant == "pending_link_used":
        def any_status(conn: Any, org_id: int, account_id: int) -> list[Recipient]:
            rows = conn.execute(sa.select(contacts.c.id, contacts.c.email).join(
                contact_links, contact_links.c.contact_id == contacts.c.id).where(
                contact_links.c.account_id == account_id, contact_links.c.role == "billing"))
            return [Recipient(int(i), str(e)) for i, e in rows]  # the bug: status ignored

        monkeypatch.setattr(plan, "resolve_recipients", per_account(any_status))
        _send_through(world)
        _assert_stopped(world, cause="not now a verified billing contact")
    else:
        result = world.plan()
        assert result.verdict == "hold"
        assert world.smtp.received == []
        _assert_stopped(world, cause="history does not explain", status="held")


def test_recipients_from_the_wrong_column(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with world.engine.begin() as conn:
        for i, account_id in enumerate(sorted(world.scenario.account_ids.values()), 1):
            admin = parties.add_contact(conn, world.org_id, f"admin{i}@client{i}.example",
                                        actor="ops")
            link = parties.link_contact(conn, world.org_id, admin, account_id, "admin",
                                        actor="ops")
            parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                    method="operator", reason="admin")

    def wrong_role(conn: Any, org_id: int, account_id: int) -> list[Recipient]:
        rows = conn.execute(sa.select(contacts.c.id, contacts.c.email).join(
            contact_links, contact_links.c.contact_id == contacts.c.id).where(
            contact_links.c.account_id == account_id, contact_links.c.role == "admin",
            contact_links.c.status == "verified"))
        return [Recipient(int(i), str(e)) for i, e in rows]

    monkeypatch.setattr(plan, "resolve_recipients", per_account(wrong_role))
    _send_through(world)
    _assert_stopped(world, cause="not now a verified billing contact")


def test_replay_of_an_old_runs_invoices(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.plan()
    world.send()
    before = len(world.smtp.received)
    new_run = second_cycle(world)
    real = plan_store.run_invoices
    old_run = world.run_id

    def replay(conn: Any, org_id: int, run_id: int, **chunk: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in real(conn, org_id, old_run, **chunk)]  # the refactor's bug

    monkeypatch.setattr(plan_store, "run_invoices", replay)
    result = world.plan(new_run)
    if result.verdict == "hold":
        world.approve(new_run)
    world.send(new_run)
    assert len(world.smtp.received) == before
    assert world.run_status(new_run) == "halted"
    assert "not a finalized invoice of this run" in world.alert_text()


def test_contacts_swapped_between_accounts_by_a_migration(world: World) -> None:
    a1, a2 = world.scenario.account_ids["A0001"], world.scenario.account_ids["A0002"]
    with world.engine.begin() as conn:  # a data migration: raw SQL, no history written
        conn.execute(sa.text("UPDATE contact_links SET account_id = CASE account_id "
                             "WHEN :a1 THEN :a2 WHEN :a2 THEN :a1 END "
                             "WHERE account_id IN (:a1, :a2)"), {"a1": a1, "a2": a2})
    result = world.plan()
    assert result.verdict == "hold"
    with pytest.raises(Exception, match="approve"):
        world.send()
    assert world.smtp.received == []
    _assert_stopped(world, cause="history does not explain", status="held")


def test_one_address_suddenly_on_many_accounts(sqlite_engine: Engine, tmp_path: Path,
                                               smtp_server: SmtpCapture,
                                               dkim_signer: DkimSigner) -> None:
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=12)
    world.plan()
    world.send()
    new_run = second_cycle(world)
    with world.engine.begin() as conn:  # a bulk operation attaches one address everywhere
        grabber = parties.add_contact(conn, world.org_id, "collector@bulk.example", actor="bulk")
        for account_id in world.scenario.account_ids.values():
            link = parties.link_contact(conn, world.org_id, grabber, account_id, "billing",
                                        actor="bulk")
            parties.set_link_status(conn, world.org_id, link, "verified", actor="bulk",
                                    method="operator", reason="bulk import")
    received = len(world.smtp.received)
    result = world.plan(new_run)
    assert result.verdict == "hold"
    assert len(world.smtp.received) == received
    report = {f["kind"]: f for f in result.report["findings"]}
    assert report["fan_in_grown"]["holds"] and report["new_pairs"]["holds"]
    assert "collector@bulk.example" in str(report["fan_in_grown"]["items"])
    assert world.run_status(new_run) == "held" and "plan_hold" in world.alert_causes()


def test_a_name_with_crlf_and_bcc(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.update(contacts).where(
            contacts.c.email == "billing1@client1.example").values(
            name="Eve\r\nBcc: eve@evil.example"))
    result = world.plan()
    assert result.verdict == "hold"
    assert "control characters" in world.alert_text()
    world.approve()  # a reviewer waves it through: the sender still refuses the header
    world.send()
    assert "eve@evil.example" not in world.smtp.all_recipients()
    _assert_stopped(world, cause="control characters")


def test_a_naive_mime_builder_with_header_injection(world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = mime.build_message

    def naive(**kwargs: Any) -> mime.Outgoing:
        out = real(**kwargs)
        injected = out.data.replace(b"\r\nSubject:", b"\r\nBcc: eve@evil.example\r\nSubject:", 1)
        return mime.Outgoing(out.message_id, out.mail_from,
                             (*out.rcpt_to, "eve@evil.example"), injected)

    monkeypatch.setattr(mime, "build_message", naive)
    _send_through(world)
    assert "eve@evil.example" not in world.smtp.all_recipients()
    _assert_stopped(world, cause="forbidden recipient header")


def test_another_invoices_pdf_attached(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = compose._read_documents
    ids = world.scenario.invoice_ids

    def swapped(conn: Any, invoice_id: int, rows: Any) -> dict[str, bytes]:
        files = real(conn, invoice_id, rows)
        other = ids[(ids.index(invoice_id) + 1) % len(ids)]
        theirs = compose._DOCUMENTS.rows(conn, {"org": world.org_id, "invoice": other})
        return {**files, "pdf": real(conn, other, theirs)["pdf"]}

    monkeypatch.setattr(compose, "_read_documents", swapped)
    _send_through(world)
    assert world.smtp.received == []
    _assert_stopped(world, cause="Factur-X XML is another invoice")
