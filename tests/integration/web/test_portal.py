"""The customer portal in a real Chromium: a magic link that works once, a session that sees
one account, a colleague invited and verified, and "not for me" reaching the operators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.app import misdelivery
from sealbill.app.portal import LOGIN
from sealbill.store.parties import verification as tokens
from sealbill.store.schema import alerts, contact_links, contacts, invoices, misdelivery_reports
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import SECRET, Site

ME = "billing1@client1.example"


def ask_link(page: Page, site: Site, address: str) -> str:
    page.goto(f"{site.url}/portal/{site.slug}/")
    page.get_by_label("E-mail").fill(address)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("status")).to_contain_text("a sign-in link is on its way")
    return site.last_link(address, "/enter?code=")


def numbers_of(site: Site, reference: str) -> set[str]:
    with site.engine.begin() as conn:
        return set(conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == site.org_id,
            invoices.c.account_reference == reference,
            invoices.c.number.is_not(None))).scalars())


def test_magic_link_signs_in_to_one_account_and_works_once(site: Site, page: Page) -> None:
    link = ask_link(page, site, ME)
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Client 1 SARL · Invoices and credit notes")
           ).to_be_visible()
    shown = set(page.locator("tbody tr td:first-child").all_inner_texts())
    assert shown == numbers_of(site, "A0001") and shown
    assert not shown & numbers_of(site, "A0002")
    assert axe_violations(page) == []
    screenshot(page, "portal-invoices")
    href = page.get_by_role("link", name="PDF").first.get_attribute("href")
    pdf = page.request.get(f"{site.url}{href}")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.get_by_role("link", name="Delivery log").click()
    expect(page.locator("tbody")).to_contain_text(ME)
    assert axe_violations(page) == []

    fresh = page.context.browser.new_context()  # type: ignore[union-attr]
    again = fresh.new_page()
    again.goto(link)
    again.get_by_role("button", name="Sign in").click()
    expect(again.get_by_role("alert")).to_contain_text("not valid")
    fresh.close()


def test_an_expired_link_and_a_made_up_link_are_refused(site: Site, page: Page) -> None:
    with site.engine.begin() as conn:
        contact = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.email == "billing3@client3.example")).scalar_one()
        code, _ = tokens.issue(conn, site.org_id, int(contact),
                               site.scenario.account_ids["A0003"], SECRET, purpose=LOGIN,
                               ttl=timedelta(minutes=15),
                               now=datetime.now(UTC) - timedelta(minutes=16))
    for attempt in (code, "made-up.code"):
        page.goto(f"{site.url}/portal/{site.slug}/enter?code={quote(attempt)}")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not valid")
        assert "sb_portal" not in {c["name"] for c in page.context.cookies()}


def test_a_colleague_is_invited_gets_only_the_verification_mail_and_verifies(
        site: Site, page: Page) -> None:
    colleague = "colleague@client2.example"
    page.goto(ask_link(page, site, "billing2@client2.example"))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Contacts").click()
    page.get_by_label("E-mail", exact=True).fill(colleague)
    page.get_by_label("Name").fill('<script>alert("x")</script><img src=x onerror=alert(1)>')
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent")
    row = page.get_by_role("row", name=colleague)
    expect(row).to_contain_text('<script>alert("x")</script>')  # shown as text, inert
    expect(row).to_contain_text("pending")
    assert page.locator("td script, td img").count() == 0 and dialogs == []
    assert axe_violations(page) == []
    screenshot(page, "portal-contacts")
    assert len(site.mails_to(colleague)) == 1  # the verification mail, nothing else

    link = site.last_link(colleague, "/verify?code=")
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    theirs = other.new_page()
    theirs.goto(link)
    expect(theirs.get_by_text(colleague)).to_be_visible()
    assert axe_violations(theirs) == []
    theirs.get_by_role("button", name="Confirm").click()
    expect(theirs.get_by_role("status")).to_contain_text("A0002")
    other.close()
    with site.engine.begin() as conn:
        status = conn.execute(sa.select(contact_links.c.status).join(
            contacts, contacts.c.id == contact_links.c.contact_id).where(
            contacts.c.email == colleague)).scalar_one()
    assert status == "verified"
    page.reload()
    expect(page.get_by_role("row", name=colleague)).to_contain_text("verified")


def test_not_for_me_records_a_report_alerts_operators_and_the_deletion(
        site: Site, page: Page) -> None:
    link = site.last_link("billing1@client1.example", "/not-for-me/")  # in the invoice mail
    token = link.rsplit("/", 1)[1]
    assert token == misdelivery.signed_token(site.engine, site.org_id,
                                             site.scenario.invoice_ids[0], SECRET)
    page.goto(link)
    assert axe_violations(page) == []
    page.get_by_role("button", name="This invoice is not for me").click()
    expect(page.get_by_role("status")).to_contain_text("the sender has been alerted")
    page.get_by_role("button", name="I deleted the mail").click()
    expect(page.get_by_role("status")).to_contain_text("deleted is recorded")
    with site.engine.begin() as conn:
        report = conn.execute(sa.select(misdelivery_reports).where(
            misdelivery_reports.c.organization_id == site.org_id)).one()
        cause = conn.execute(sa.select(alerts.c.cause).where(
            alerts.c.id == report.alert_id)).scalar_one()
    assert cause == "misdelivery_report" and report.deletion_confirmed_at is not None
    assert report.ledger_seqs  # the ledger rows of the invoice, as evidence
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert page.request.get(f"{site.url}/portal/{site.slug}/not-for-me/{forged}").status == 404


def test_own_address_changes_only_once_the_new_one_is_verified_and_a_colleague_is_removed(
        site: Site, page: Page) -> None:
    old, new = "billing3@client3.example", "new3@client3.example"
    page.goto(ask_link(page, site, old))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Contacts").click()
    page.get_by_role("button", name="Remove ap3@outsourced-ap.fr").click()
    expect(page.get_by_role("status")).to_contain_text("Removed")
    expect(page.get_by_role("row", name="ap3@outsourced-ap.fr")).to_have_count(0)
    page.get_by_label("New address").fill(new)
    page.get_by_role("button", name="Send a confirmation to the new address").click()
    expect(page.get_by_role("status")).to_contain_text("keeps receiving invoices")

    def status(address: str) -> str:
        with site.engine.begin() as conn:
            return str(conn.execute(sa.select(contact_links.c.status).join(
                contacts, contacts.c.id == contact_links.c.contact_id).where(
                contacts.c.email == address)).scalar_one())

    assert (status(old), status(new)) == ("verified", "pending")
    page.goto(site.last_link(new, "/verify?code="))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text("A0003")
    assert (status(old), status(new)) == ("revoked", "verified")
    # The old address's session ends with its access.
    page.goto(f"{site.url}/portal/{site.slug}/invoices")
    expect(page.get_by_role("button", name="Send me a link")).to_be_visible()
