"""Editing in the console, in a real Chromium: accounts (create, update, archive), contacts
(add, new address and its re-verification by a mailed code, role, unlink), subscriptions
(create, change plan, cancel) and an incident's severity, measures, notification and closing —
each through its use case, refused inputs shown next to their fields, read-only operators
refused, every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.app import catalog, subscriptions
from sealbill.pipeline.incident.actions import Scope, open_incident
from sealbill.store.schema import audit_log, contact_links, contacts, incidents
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import Site
from tests.integration.web.test_console import sign_in


def audited(site: Site, action: str) -> list[dict[str, object]]:
    with site.engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit_log).where(
            audit_log.c.action == action, audit_log.c.organization_id == site.org_id))]


def link_states(site: Site, email: str) -> list[tuple[str, str]]:
    with site.engine.begin() as conn:
        return sorted((str(r.role), str(r.status)) for r in conn.execute(
            sa.select(contact_links.c.role, contact_links.c.status).join(
                contacts, contacts.c.id == contact_links.c.contact_id).where(
                contacts.c.email == email)))


def test_an_account_is_created_with_its_field_errors_shown_then_updated_and_archived(
        site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts")
    page.get_by_role("link", name="New account").click()
    expect(page.get_by_role("heading", name="New account")).to_be_visible()
    assert axe_violations(page) == []
    for label, value in (("Reference", "B0001"), ("Name", "Bistro <b>Lyon</b>"),
                         ("Address", "3 quai Saint-Vincent"), ("Postcode", "69001"),
                         ("City", "Lyon"), ("Country (ISO code, e.g. FR)", "France")):
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("alert")).to_contain_text("account: 1 problem(s)")
    country = page.get_by_label("Country (ISO code, e.g. FR)")
    expect(country).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#create-country-error")).to_be_visible()
    expect(page.get_by_label("City", exact=True)).to_have_value("Lyon")  # kept
    assert axe_violations(page) == []
    screenshot(page, "console-account-field-error")
    assert audited(site, "account.create") == []
    country.fill("FR")
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("B0001 · Bistro <b>Lyon</b>")

    page.get_by_text("Edit the account").click()
    page.get_by_label("City", exact=True).fill("Villeurbanne")
    page.get_by_label("Postcode").fill("69100")
    page.get_by_role("button", name="Save the account").click()
    expect(page.get_by_text("3 quai Saint-Vincent, 69100 Villeurbanne, FR")).to_be_visible()
    [update] = audited(site, "account.update")
    assert update["before"] == {"city": "Lyon", "postcode": "69001"}
    assert update["after"] == {"city": "Villeurbanne", "postcode": "69100"}
    assert update["actor"] == "operator:alice@acme-cloud.example"
    assert axe_violations(page) == []


def test_contacts_are_added_readdressed_for_reverification_reroled_and_unlinked(
        site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/A0003")
    page.get_by_text("Add a contact").click()
    add = page.locator("form[action$='/contacts']")
    add.get_by_label("Address", exact=True).fill("not an address")
    page.get_by_role("button", name="Add the contact (pending until verified)").click()
    expect(page.get_by_role("alert")).to_contain_text("contact: 1 problem(s)")
    expect(page.locator("#add-contact-email-error")).to_be_visible()
    add = page.locator("form[action$='/contacts']")
    add.get_by_label("Address", exact=True).fill("it@client3.example")
    add.get_by_label("Role", exact=True).select_option("technical")
    page.get_by_role("button", name="Add the contact (pending until verified)").click()
    expect(page.get_by_role("article", name="it@client3.example")).to_contain_text(
        "technical: pending")
    assert link_states(site, "it@client3.example") == [("technical", "pending")]

    # A verified billing contact gets a new address: its link needs verifying again.
    card = page.get_by_role("article", name="billing3@client3.example")
    card.locator("summary").filter(has_text="Edit the contact").click()
    card.get_by_label("New address (verified again before use)").fill(
        "invoices@client3.example")
    card.get_by_role("button", name="Change the address").click()
    card = page.get_by_role("article", name="invoices@client3.example")
    expect(card).to_contain_text("billing: pending")
    expect(card).to_contain_text("verification required before anything is sent to it")
    assert link_states(site, "invoices@client3.example") == [("billing", "pending")]
    # The console mails the new address a code; its link opens the portal's verification page.
    card.get_by_role("button", name="Send a verification code").click()
    link = site.last_link("invoices@client3.example", "/verify?code=")
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    theirs = other.new_page()
    theirs.goto(link)
    theirs.get_by_role("button", name="Confirm").click()
    expect(theirs.get_by_role("status")).to_contain_text("A0003")
    other.close()
    assert link_states(site, "invoices@client3.example") == [("billing", "verified")]
    page.reload()
    card = page.get_by_role("article", name="invoices@client3.example")
    expect(card).to_contain_text("billing: verified")
    expect(card).to_contain_text("link seal: verified")

    card.locator("summary").filter(has_text="Edit the contact").click()
    card.get_by_label("Role instead of billing").select_option("admin")
    card.get_by_role("button", name="Set the role").click()
    card = page.get_by_role("article", name="invoices@client3.example")
    expect(card).to_contain_text("admin: pending")
    assert link_states(site, "invoices@client3.example") == [("admin", "pending"),
                                                             ("billing", "revoked")]
    card.locator("summary").filter(has_text="Edit the contact").click()
    card.get_by_role("button", name="Unlink from this account").click()
    expect(page.get_by_role("article", name="invoices@client3.example")).to_contain_text(
        "admin: revoked")
    assert {e["action"] for e in (*audited(site, "contact.verification_sent"),
                                  *audited(site, "contact.add"),
                                  *audited(site, "contact.change_address"),
                                  *audited(site, "contact.set_role"),
                                  *audited(site, "contact.unlink"))} == {
        "contact.verification_sent", "contact.add", "contact.change_address",
        "contact.set_role", "contact.unlink"}
    assert axe_violations(page) == []


def test_subscriptions_are_created_moved_to_another_plan_and_cancelled(
        site: Site, page: Page) -> None:
    catalog.create_plan(site.engine, site.actor("alice"), site.org_id, {
        "code": "pro", "name": "Pro", "currency": "EUR",
        "prices": [{"effective_from": "2026-01-01", "charges": [
            {"code": "base", "model": "flat", "description_fr": "Abonnement",
             "description_en": "Subscription", "amount": "49.00"}]}]})
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/A0002")
    page.get_by_text("Subscribe to a plan").click()
    page.get_by_label("Plan", exact=True).select_option("pro")
    page.get_by_label("Start (YYYY-MM-DD)").fill("2026-13-01")
    page.get_by_label("External id (optional)").fill("sub-A0002-pro")
    page.get_by_role("button", name="Create the subscription").click()
    expect(page.locator("#subscribe-started_on-error")).to_be_visible()
    page.get_by_label("Start (YYYY-MM-DD)").fill("2026-12-01")
    page.get_by_role("button", name="Create the subscription").click()
    row = page.get_by_role("row", name="sub-A0002-pro")
    expect(row).to_contain_text("pro")

    sub = page.locator("tr").filter(
        has=page.get_by_role("rowheader", name="sub-A0002", exact=True))
    sub.get_by_label("New plan of sub-A0002").select_option("pro")
    sub.get_by_label("When the plan changes").select_option("period_end")
    sub.get_by_role("button", name="Change the plan").click()
    first = datetime.now(UTC).date().replace(day=1)
    next_start = (first + timedelta(days=32)).replace(day=1)
    shown = subscriptions.show(site.engine, site.actor("carol"), site.org_id, "sub-A0002")
    assert [(p["plan"], p["start_on"]) for p in shown["phases"]][-1] == ("pro", next_start)

    row = page.get_by_role("row", name="sub-A0002-pro")
    row.get_by_label("Cancel sub-A0002-pro").select_option("period_end")
    row.get_by_role("button", name="Cancel the subscription").click()
    expect(page.get_by_role("row", name="sub-A0002-pro")).to_contain_text("at period end")
    assert subscriptions.show(site.engine, site.actor("carol"), site.org_id,
                              "sub-A0002-pro")["ends_on"] is not None
    assert [e["action"] for e in audited(site, "subscription.change_plan")] == [
        "subscription.change_plan"]
    assert axe_violations(page) == []


def test_a_read_only_operator_sees_no_edit_form_and_is_refused_by_the_server(
        site: Site, page: Page) -> None:
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/accounts/A0001")
    expect(page.get_by_text("Edit the account")).to_have_count(0)
    expect(page.get_by_text("Add a contact")).to_have_count(0)
    expect(page.get_by_role("button", name="Change the plan")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    for path, form in (("/console/accounts/A0001/edit", {"city": "Nowhere"}),
                       ("/console/accounts/A0001/archive", {}),
                       ("/console/accounts/A0001/contacts", {"email": "x@client1.example"}),
                       ("/console/accounts/new", {"reference": "C1", "name": "C"})):
        answer = page.request.post(site.url + path, form={"csrf": csrf, **form})
        assert answer.status == 403, path
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(
            audit_log.c.actor == "operator:carol@acme-cloud.example",
            audit_log.c.action.like("account.%") | audit_log.c.action.like("contact.%")
        )).scalar() == 0


def test_an_account_is_archived_and_takes_no_new_contact(site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/B0001")
    page.get_by_text("Edit the account").click()
    page.get_by_role("button", name="Archive the account (its subscriptions end with the "
                                    "period)").click()
    expect(page.locator("main .s-revoked").first).to_contain_text("archived")
    expect(page.get_by_text("Add a contact")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    answer = page.request.post(f"{site.url}/console/accounts/B0001/contacts",
                               form={"csrf": csrf, "email": "late@client1.example"})
    assert answer.status == 409 and "is archived" in answer.text()
    assert len(audited(site, "account.archive")) == 1


def test_an_incidents_severity_measures_notification_and_closing_are_recorded(
        site: Site, page: Page) -> None:
    incident = open_incident(site.engine, site.org_id, title="Invoices sent to a wrong address",
                             aware_at=datetime.now(UTC) - timedelta(hours=5),
                             scope=Scope(run_id=site.scenario.run_id), actor="test")
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/incidents/{incident}")
    page.get_by_text("Assess the severity (ENISA method)").click()
    page.get_by_label("dpc (blank: proposed)").fill("4")
    page.get_by_role("button", name="Record the severity").click()
    expect(page.get_by_role("alert")).to_contain_text("severity: 1 problem(s)")
    expect(page.get_by_role("alert")).to_contain_text("dpc")
    page.get_by_label("dpc (blank: proposed)").fill("4")
    page.get_by_label("Why dpc").fill("bank details were on the invoices")
    page.get_by_role("button", name="Record the severity").click()
    expect(page.get_by_text("adjusted from")).to_contain_text(
        "bank details were on the invoices")

    page.get_by_text("Record measures and their dates").click()
    page.get_by_label("Measure taken").fill("contact corrected and re-verified")
    page.get_by_label("Deletion requested at (ISO time with offset)").fill("2026-12-06T10:00")
    page.get_by_role("button", name="Record the measures").click()
    expect(page.locator("#measures-deletion_requested_at-error")).to_be_visible()
    asked = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    page.get_by_label("Deletion requested at (ISO time with offset)").fill(asked)
    page.get_by_role("button", name="Record the measures").click()
    expect(page.get_by_text("taken: contact corrected and re-verified")).to_be_visible()
    expect(page.get_by_text(f"Deletion requested at {asked[:10]}")).to_be_visible()

    page.get_by_text("Record the notification").first.click()
    page.get_by_label("Notification type").select_option("initial")
    notified = datetime.now(UTC).replace(microsecond=0).isoformat()
    page.get_by_label("Notified at (ISO time with offset)").fill(notified)
    page.get_by_role("button", name="Record the notification").click()
    expect(page.get_by_text("Type: initial")).to_be_visible()
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(incidents.c.status).where(
            incidents.c.id == incident)).scalar_one() == "notified"
    assert axe_violations(page) == []

    page.get_by_label("Why the incident is closed (required)").fill(
        "all recipients deleted the mail; authority notified")
    page.get_by_role("button", name="Close the incident").click()
    expect(page.get_by_text("Status: closed")).to_be_visible()
    expect(page.get_by_role("button", name="Close the incident")).to_have_count(0)
    timeline = page.locator("h2:text('Timeline') + ul")
    for event in ("assessed", "updated", "closed"):
        expect(timeline).to_contain_text(event)
    actions = {str(e["action"]) for e in audited(site, "incident.assess")
               + audited(site, "incident.measures") + audited(site, "incident.notification")
               + audited(site, "incident.close")}
    assert actions == {"incident.assess", "incident.measures", "incident.notification",
                       "incident.close"}
    assert axe_violations(page) == []
