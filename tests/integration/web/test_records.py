"""Console screens of the safety records in a real Chromium: the ledger search, a guard alert
resolved, an incident opened from a "not for me" report with its clock and drafts."""

from __future__ import annotations

import io
import zipfile

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.app import catalog, misdelivery, runs, usage
from sealbill.store.schema import (
    alerts,
    sending_switches,
    usage_events,
)
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import SECRET, Site
from tests.integration.web.test_console import run_status, sign_in


def test_ledger_search_by_address_shows_who_received_which_invoice(
        site: Site, page: Page) -> None:
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/ledger")
    page.get_by_label("Address").fill("billing2@client2.example")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("A0002")
    expect(rows.first).to_contain_text("billing2@client2.example")
    assert axe_violations(page) == []
    screenshot(page, "console-ledger")
    page.get_by_label("From (ISO time with offset)").fill("2026-11-01T00:00")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("time zone offset")


def test_a_guard_alert_is_shown_with_its_evidence_and_resolved_with_a_reason(
        site: Site, page: Page) -> None:
    org = site.org_id
    runs.approve(site.engine, site.actor("bob"), org, site.held_run, "reviewed")
    run_id = site.halt_by_revoking("ap1@outsourced-ap.fr")
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/alerts")
    card = page.locator("article.card").filter(has_text="ap1@outsourced-ap.fr")
    expect(card).to_have_count(1)
    assert axe_violations(page) == []
    screenshot(page, "console-alerts")
    card.get_by_label("Reason for resuming (cause fixed)").fill("replanned without ap1")
    card.get_by_role("button", name="Resume the run").click()
    expect(page.locator("article.card").filter(has_text="ap1@outsourced-ap.fr")
           ).to_have_count(0)
    assert run_status(site, site.held_run) == "approved"
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts).where(
            alerts.c.run_id == run_id, alerts.c.resolved_at.is_(None))).scalar() == 0


def test_an_incident_opens_from_a_not_for_me_report_with_its_clock_and_drafts(
        site: Site, page: Page) -> None:
    token = misdelivery.signed_token(site.engine, site.org_id, site.scenario.invoice_ids[1],
                                     SECRET)
    misdelivery.report(site.engine, site.org_id, token, SECRET, "I am not Client 2")
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/alerts")
    page.get_by_role("button", name="Open an incident").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Misdelivery reported")
    expect(page.locator(".clock .remaining")).to_contain_text("left")
    expect(page.get_by_role("table", name="Data subjects × unintended recipients")
           ).to_contain_text("No unintended recipient")
    # The operator judges that billing2 was never entitled to A0002 (the report says so).
    page.get_by_text("Mark a link as never entitled").click()
    page.get_by_label("Contact address").fill("billing2@client2.example")
    page.get_by_label("Account reference").fill("A0002")
    page.get_by_label("Reason (required)").fill("the recipient reported it; not Client 2")
    page.get_by_role("button", name="Record the correction").click()
    matrix = page.get_by_role("table", name="Who received whose data")
    expect(matrix.get_by_role("row", name="A0002")).to_contain_text("●")
    expect(page.get_by_role("table", name="Data subjects × unintended recipients")
           ).to_contain_text("billing2@client2.example")
    page.get_by_label("Cause of the breach").fill("contact swapped by a data migration")
    page.get_by_label("How it was detected").fill("the recipient clicked 'not for me'")
    page.get_by_role("button", name="Record the facts").click()
    page.get_by_label("yes").check()
    page.get_by_label("Reasoning (required)").fill("invoice data of a customer disclosed")
    page.get_by_label("Communication to the data subjects (Art. 34)").select_option("planned")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_text("Notify the authority: yes")).to_be_visible()
    page.get_by_role("button", name="Pause all sending (kill switch)").click()
    expect(page.get_by_text("Paused for this incident")).to_be_visible()
    timeline = page.locator("h2:text('Timeline') + ul")
    for event in ("updated", "decided", "sending_paused"):
        expect(timeline).to_contain_text(event)
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sending_switches.c.paused).where(
            sending_switches.c.organization_id == site.org_id)).scalar_one() is True
    assert axe_violations(page) == []
    screenshot(page, "console-incident")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the drafts").click()
    names = zipfile.ZipFile(io.BytesIO(info.value.path().read_bytes())).namelist()
    assert any("art33" in n and n.endswith(".pdf") for n in names), names
    assert any(n.endswith(".md") for n in names)


def test_usage_is_voided_with_a_reason_by_a_role_that_may_and_not_offered_to_read_only(
        site: Site, page: Page) -> None:
    alice, org = site.actor("alice"), site.org_id
    catalog.create_metric(site.engine, alice, org, {"code": "api_calls", "name": "API calls",
                                                    "aggregation": "count"})
    usage.record(site.engine, alice, org, {"event_id": "evt-bad-1", "account": "A0003",
                                           "metric": "api_calls",
                                           "timestamp": "2026-11-03T10:00:00+00:00"})
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/accounts/A0003")
    expect(page.get_by_role("row", name="evt-bad-1")).to_be_visible()
    expect(page.get_by_role("button", name="Void evt-bad-1")).to_have_count(0)
    page.context.clear_cookies()
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/accounts/A0003")
    page.get_by_label("Reason to void evt-bad-1").fill("duplicate of a batch import")
    page.get_by_role("button", name="Void evt-bad-1").click()
    expect(page.get_by_role("row", name="evt-bad-1")).to_contain_text(
        "duplicate of a batch import")
    assert axe_violations(page) == []
    with site.engine.begin() as conn:
        voided = conn.execute(sa.select(usage_events.c.voided_by).where(
            usage_events.c.event_id == "evt-bad-1")).scalar_one()
    assert voided == "operator:alice@acme-cloud.example"


CATALOG = """\
metrics:
  - code: storage_gb
    name: Storage
    aggregation: max
plans:
  - code: archive
    name: Archive
    currency: EUR
    prices:
      - effective_from: 2026-01-01
        charges:
          - {code: base, model: flat, description_fr: Abonnement, description_en: Subscription,
             amount: "12.00"}
"""


def test_catalog_file_is_previewed_without_writing_then_applied(site: Site, page: Page) -> None:
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/catalog")
    expect(page.get_by_role("heading", name="Plans")).to_be_visible()
    expect(page.get_by_label("Catalog file (YAML, as for sealbill apply -f)")).to_have_count(0)
    page.context.clear_cookies()
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/catalog")
    page.get_by_label("Catalog file (YAML, as for sealbill apply -f)").fill(CATALOG)
    page.get_by_role("button", name="Preview the changes").click()
    preview = page.get_by_role("table", name="Preview: nothing written")
    expect(preview.get_by_role("row", name="archive")).to_contain_text("create")
    expect(page.get_by_role("heading", name="archive · Archive")).to_have_count(0)
    assert axe_violations(page) == []
    page.get_by_role("button", name="Apply this file").click()
    expect(page.get_by_role("heading", name="archive · Archive · month · EUR")).to_be_visible()
    page.get_by_label("Catalog file (YAML, as for sealbill apply -f)").fill(
        CATALOG.replace("max", "sum"))
    page.get_by_role("button", name="Preview the changes").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot change")
