"""The held-run screen and the guard alerts in a real Chromium: each recipient's seal status in
the evidence, a message set aside (reason required, allowed roles only, audited) from the
review and from a guard alert, queued again, and the main actions done with the keyboard
alone."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import Locator, Page, expect

from sealbill.app.invoices import run_row_id
from sealbill.store.schema import (
    alerts,
    audit_log,
    contact_links,
    contacts,
    delivery_envelopes,
    invoices,
    outbox,
)
from tests.integration.web.conftest import axe_violations
from tests.integration.web.site import Site
from tests.integration.web.test_console import run_status, sign_in

SET_ASIDE_REASON = re.compile("Reason to set aside")


def link_of(site: Site, email: str) -> int:
    with site.engine.begin() as conn:
        return int(conn.execute(sa.select(contact_links.c.id).join(
            contacts, contacts.c.id == contact_links.c.contact_id).where(
            contacts.c.email == email, contact_links.c.status != "revoked")).scalar_one())


def message_status(site: Site, account: str) -> str:
    with site.engine.begin() as conn:
        run_id = run_row_id(conn, site.org_id, site.held_run)
        return str(conn.execute(sa.select(outbox.c.status).join(
            delivery_envelopes, delivery_envelopes.c.id == outbox.c.envelope_id).join(
            invoices, invoices.c.id == delivery_envelopes.c.invoice_id).where(
            outbox.c.run_id == run_id, invoices.c.account_reference == account)).scalar_one())


def tab_to(page: Page, target: Locator, limit: int = 250) -> None:
    """Press Tab until ``target`` has the focus (the keyboard's way to reach it)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("e => e === document.activeElement"):
            return
    raise AssertionError(f"{target} not reached with Tab")


def test_held_run_evidence_shows_each_recipients_seal_and_a_forged_link_as_failing(
        site: Site, page: Page) -> None:
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    row = page.get_by_role("row", name="A0002")
    expect(row).to_contain_text("ap2@outsourced-ap.fr: seal verified")
    expect(row).to_contain_text("billing2@client2.example: seal verified")
    # A link row edited behind sealbill's back (its verification method rewritten).
    link = link_of(site, "ap2@outsourced-ap.fr")
    with site.engine.begin() as conn:
        method = conn.execute(sa.select(contact_links.c.verification_method).where(
            contact_links.c.id == link)).scalar_one()
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link)
                     .values(verification_method="code"))
    try:
        page.reload()
        expect(row).to_contain_text("ap2@outsourced-ap.fr: seal failing")
        expect(row).to_contain_text("link row: seal mismatch")
        expect(row).to_contain_text("billing2@client2.example: seal verified")
        assert axe_violations(page) == []
        page.goto(f"{site.url}/console/accounts/A0002")
        card = page.get_by_role("article", name="ap2@outsourced-ap.fr")
        expect(card).to_contain_text("link seal: failing (mismatch)")
        card.locator("summary").filter(has_text="History").click()
        history = card.get_by_role("table")
        expect(history).to_contain_text("verified")
        expect(history).not_to_contain_text("failing")  # the event log itself is intact
    finally:
        with site.engine.begin() as conn:
            conn.execute(sa.update(contact_links).where(contact_links.c.id == link)
                         .values(verification_method=method))
    page.reload()
    expect(page.get_by_role("article", name="ap2@outsourced-ap.fr")).to_contain_text(
        "link seal: verified")
    assert axe_violations(page) == []


def test_a_message_is_set_aside_from_the_held_run_only_with_a_reason_and_an_allowed_role(
        site: Site, page: Page) -> None:
    sign_in(page, site, "carol")  # read-only: no form, and the server refuses
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    expect(page.get_by_role("button", name=re.compile("Set aside"))).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    answer = page.request.post(f"{site.url}/console/runs/{site.held_run}/set-aside",
                               form={"csrf": csrf, "invoice": "F-000006",
                                     "reason": "not mine to decide"})
    assert answer.status == 403
    page.context.clear_cookies()

    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    row = page.get_by_role("row", name="A0003")
    invoice = row.locator("input[name=invoice]").get_attribute("value") or ""
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    refused = page.request.post(f"{site.url}/console/runs/{site.held_run}/set-aside",
                                form={"csrf": csrf, "invoice": invoice, "reason": " "})
    assert refused.status == 422
    assert "give a reason (recorded)" in refused.text()
    assert message_status(site, "A0003") == "queued"
    row.get_by_label(SET_ASIDE_REASON).fill("customer disputes the invoice; hold it")
    row.get_by_role("button", name=re.compile("Set aside")).click()
    expect(page.get_by_role("row", name="A0003")).to_contain_text("set_aside")
    expect(page.get_by_role("row", name="A0003").get_by_role(
        "button", name=re.compile("Set aside"))).to_have_count(0)
    assert message_status(site, "A0003") == "set_aside"
    assert run_status(site, site.held_run) == "held"  # setting aside approves nothing
    with site.engine.begin() as conn:
        entry = conn.execute(sa.select(audit_log).where(
            audit_log.c.action == "run.set_aside")).one()
    assert entry.actor == "operator:alice@acme-cloud.example" and entry.channel == "web"
    assert entry.after["invoice"] == invoice
    assert entry.after["reason"] == "customer disputes the invoice; hold it"
    assert axe_violations(page) == []


def test_set_aside_approve_and_edit_a_contact_with_the_keyboard_alone(
        site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    reason = page.get_by_role("row", name="A0001").get_by_label(SET_ASIDE_REASON)
    tab_to(page, reason)
    page.keyboard.type("duplicate sent by post")
    page.keyboard.press("Enter")
    expect(page.get_by_role("row", name="A0001")).to_contain_text("set_aside")
    assert message_status(site, "A0001") == "set_aside"
    page.context.clear_cookies()

    sign_in(page, site, "bob")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    tab_to(page, page.get_by_label("Reason (required)"))
    page.keyboard.type("AP outsourcing confirmed with each customer")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Approve and let it send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Approved by operator:bob@acme-cloud.example")).to_be_visible()
    assert run_status(site, site.held_run) == "approved"

    page.context.clear_cookies()
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/A0001")
    card = page.get_by_role("article", name="ap1@outsourced-ap.fr")
    tab_to(page, card.locator("summary").filter(has_text="Edit the contact"))
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(card.get_by_label("New address (verified again before use)")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("payables@outsourced-ap.fr")
    page.keyboard.press("Enter")
    card = page.get_by_role("article", name="payables@outsourced-ap.fr")
    expect(card).to_contain_text("billing: pending")
    expect(card).to_contain_text("verification required")


def test_a_guard_alert_message_is_set_aside_and_the_halted_run_released(
        site: Site, page: Page) -> None:
    run_id = site.halt_by_revoking("ap2@outsourced-ap.fr")
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/alerts")
    card = page.locator("article.card").filter(has_text="ap2@outsourced-ap.fr").filter(
        has=page.get_by_role("button", name=re.compile("Set aside")))
    expect(card).to_have_count(1)
    expect(card).to_contain_text("set_aside")
    assert axe_violations(page) == []
    card.get_by_label(SET_ASIDE_REASON).fill("ap2 left; the customer will get it by post")
    card.get_by_role("button", name=re.compile("Set aside")).click()
    expect(page.get_by_role("heading", name="Open alerts")).to_be_visible()
    assert run_status(site, site.held_run) == "approved"  # released: the rest may be sent
    assert message_status(site, "A0002") == "set_aside"
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts).where(
            alerts.c.run_id == run_id, alerts.c.resolved_at.is_(None))).scalar() == 0
        released = conn.execute(sa.select(audit_log.c.after).where(
            audit_log.c.action == "run.set_aside").order_by(audit_log.c.id.desc())
        ).scalars().first()
    assert released is not None and released["run_released"] is True


def test_a_set_aside_message_is_queued_again_for_a_fresh_guard_check(
        site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    row = page.get_by_role("row", name="A0003")
    if message_status(site, "A0003") != "set_aside":  # this test alone: set it aside first
        row.get_by_label(SET_ASIDE_REASON).fill("customer disputes the invoice; hold it")
        row.get_by_role("button", name=re.compile("Set aside")).click()
        expect(page.get_by_role("row", name="A0003")).to_contain_text("set_aside")
        row = page.get_by_role("row", name="A0003")
    row.get_by_label(re.compile("Reason to queue again")).fill("dispute settled by phone")
    row.get_by_role("button", name=re.compile("Queue again for a fresh guard check")).click()
    expect(page.get_by_role("row", name="A0003")).to_contain_text("queued")
    assert message_status(site, "A0003") == "queued"
    with site.engine.begin() as conn:
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "run.retry")).one()
    assert entry.after["reason"] == "dispute settled by phone"
    assert axe_violations(page) == []
