"""Two console actions in a real Chromium: vouching for a contact without a code (method and
evidence recorded, admin only, never by the operator who entered the address), and queueing
every failed message of a run again from the run page (the next send checks each with the
whole guard)."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.app import contact_vouch, contacts, message_actions, runs
from sealbill.app.errors import Forbidden
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.send import send_run
from sealbill.store.parties import records as parties
from sealbill.store.schema import audit_log, contact_events, contact_links, outbox
from sealbill.store.schema import contacts as contacts_table
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import FAST, Site, _operator
from tests.integration.web.test_console import sign_in

NEW = "controller@client1.example"


def _link(site: Site, email: str, account: str = "A0001") -> sa.Row:  # type: ignore[type-arg]
    with site.engine.begin() as conn:
        return conn.execute(sa.select(contact_links).join(
            contacts_table, contacts_table.c.id == contact_links.c.contact_id).where(
            contacts_table.c.email == email,
            contact_links.c.account_id == site.scenario.account_ids[account])).one()


def test_an_admin_vouches_for_a_contact_another_operator_entered(
        site: Site, page: Page) -> None:
    site.operators["dave"] = _operator(site.engine, site.org_id, "dave", "admin")
    contacts.add(site.engine, site.actor("alice"), site.org_id, "A0001",
                 {"email": NEW, "role": "billing"})
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/A0001")
    card = page.locator("article.card").filter(has_text=NEW)
    card.get_by_text("Vouch for the address without a code").click()
    card.get_by_label("How the address was checked").select_option("phone")
    card.get_by_label("Evidence (who confirmed, when, reference)").fill(
        "I typed it in myself, trust me")
    card.get_by_role("button", name="Vouch: mark verified").click()
    expect(page.get_by_role("alert")).to_contain_text("another operator must vouch")
    assert _link(site, NEW).status == "pending"

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, site, "dave")
    page.goto(f"{site.url}/console/accounts/A0001")
    card = page.locator("article.card").filter(has_text=NEW)
    card.get_by_text("Vouch for the address without a code").click()
    card.get_by_label("Evidence (who confirmed, when, reference)").fill("short")
    card.get_by_role("button", name="Vouch: mark verified").click()
    expect(page.locator("[id$='-evidence-error']")).to_contain_text("at least 10")
    assert _link(site, NEW).status == "pending"
    assert axe_violations(page) == []
    card = page.locator("article.card").filter(has_text=NEW)
    card.get_by_label("How the address was checked").select_option("signed_letter")
    card.get_by_label("Evidence (who confirmed, when, reference)").fill(
        "letter of 2026-11-20 signed by the CFO, ref. LC-204")
    card.get_by_role("button", name="Vouch: mark verified").click()
    card = page.locator("article.card").filter(has_text=NEW)
    expect(card).to_contain_text("billing: verified (operator")
    expect(card.get_by_text("Vouch for the address without a code")).to_have_count(0)
    link = _link(site, NEW)
    assert (link.status, link.verification_method) == ("verified", "operator")
    with site.engine.begin() as conn:
        reason = conn.execute(sa.select(contact_events.c.reason).where(
            contact_events.c.contact_id == link.contact_id,
            contact_events.c.event == "verified")).scalar_one()
        actions = conn.execute(sa.select(audit_log.c.actor).where(
            audit_log.c.action == "contact.confirm",
            audit_log.c.after["reason"].as_string().contains("LC-204"))).scalars().all()
    assert reason == "signed_letter: letter of 2026-11-20 signed by the CFO, ref. LC-204"
    assert actions == [f"operator:{site.operators['dave'].email}"]


def test_an_approver_without_account_rights_may_not_vouch(site: Site, page: Page) -> None:
    other = "payables@client2.example"
    contacts.add(site.engine, site.actor("alice"), site.org_id, "A0002",
                 {"email": other, "role": "billing"})
    sign_in(page, site, "bob")
    page.goto(f"{site.url}/console/accounts/A0002")
    expect(page.locator("article.card").filter(has_text=other)).to_have_count(1)
    expect(page.get_by_text("Vouch for the address without a code")).to_have_count(0)
    with pytest.raises(Forbidden):
        contact_vouch.vouch(site.engine, site.actor("bob"), site.org_id, other, "A0002",
                            method="phone", evidence="called the usual number")
    assert _link(site, other, "A0002").status == "pending"


def _send(site: Site) -> str:
    from sealbill.app.invoices import run_row_id

    with site.engine.begin() as conn:
        run_id = run_row_id(conn, site.org_id, site.held_run)
    report = send_run(site.engine, site.org_id, run_id, signer=None,
                      options=replace(FAST, canary_min_failures=100),
                      transport=SmtpSender(SmtpConfig(host=site.smtp.host,
                                                      port=site.smtp.port, timeout=2.0)))
    return report.status


def _statuses(site: Site) -> list[str]:
    from sealbill.app.invoices import run_row_id

    with site.engine.begin() as conn:
        run_id = run_row_id(conn, site.org_id, site.held_run)
        return sorted(conn.execute(sa.select(outbox.c.status).where(
            outbox.c.run_id == run_id)).scalars())


def test_every_failed_message_of_a_run_is_queued_again_and_guarded_again(
        site: Site, page: Page) -> None:
    runs.approve(site.engine, site.actor("bob"), site.org_id, site.held_run, "reviewed")
    site.smtp.faults = deque(["accept", "5xx", "5xx"])  # the server refuses two messages
    _send(site)
    assert _statuses(site).count("failed_permanent") == 2
    sign_in(page, site, "bob")
    page.goto(f"{site.url}/console/runs/{site.held_run}")
    page.get_by_role("button", name="Queue every failed message again (2)").click()
    expect(page.locator("#retry-failed-reason-error")).to_contain_text("give a reason")
    assert _statuses(site).count("failed_permanent") == 2
    assert axe_violations(page) == []
    page.locator("#retry-failed-reason").fill("the relay's policy was fixed")
    page.get_by_role("button", name="Queue every failed message again (2)").click()
    expect(page.get_by_role("status")).to_contain_text("Queued again for a fresh guard check")
    screenshot(page, "console-run-retry")
    assert _statuses(site).count("queued") == 2
    with site.engine.begin() as conn:
        audited = conn.execute(sa.select(audit_log.c.after).where(
            audit_log.c.action == "run.retry")).scalars().all()
    assert [len(a["queued"]) for a in audited] == [2]
    # The guard checks them afresh: a recipient revoked meanwhile stops the run.
    with site.engine.begin() as conn:
        link = conn.execute(sa.select(contact_links.c.id).join(
            contacts_table, contacts_table.c.id == contact_links.c.contact_id).where(
            contacts_table.c.email.like("ap%@outsourced-ap.fr"),
            contact_links.c.status == "verified")).scalars().all()
        for row in link:
            parties.set_link_status(conn, site.org_id, int(row), "revoked", actor="customer",
                                    reason="left the company")
    received = len(site.smtp.accepted)
    assert _send(site) == "halted"
    assert len(site.smtp.accepted) == received
    with pytest.raises(Exception, match="no failed message"):
        message_actions.retry_failed(site.engine, site.actor("bob"), site.org_id,
                                     site.held_run, "again")
