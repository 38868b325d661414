"""The operator console in a real Chromium: sign-in with a TOTP code, the held run approved by
a second operator and refused to the one who started it, the progress of a run."""

from __future__ import annotations

import pyotp
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.store.schema import audit_log, billing_runs
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import PASSWORD, Site


def sign_in(page: Page, site: Site, name: str, code: str | None = None) -> None:
    who = site.operators[name]
    page.goto(f"{site.url}/console/sign-in")
    page.get_by_label("Organization").fill(site.slug)
    page.get_by_label("E-mail").fill(who.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator code").fill(code or who.code())
    page.get_by_role("button", name="Sign in").click()


def run_status(site: Site, run_ref: str) -> str:
    from sealbill.app.invoices import run_row_id

    with site.engine.begin() as conn:
        run_id = run_row_id(conn, site.org_id, run_ref)
        return str(conn.execute(sa.select(billing_runs.c.status).where(
            billing_runs.c.id == run_id)).scalar_one())


def test_operator_signs_in_with_password_and_totp_and_a_wrong_code_is_refused(
        site: Site, page: Page) -> None:
    who = site.operators["carol"]
    wrong = f"{(int(pyotp.TOTP(who.totp).now()) + 500000) % 1000000:06d}"
    sign_in(page, site, "carol", code=wrong)
    expect(page.get_by_role("alert")).to_contain_text("wrong e-mail, password or code")
    assert "sb_console" not in {c["name"] for c in page.context.cookies()}
    sign_in(page, site, "carol")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("operator:carol@acme-cloud.example · read-only")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sb_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert axe_violations(page) == []


def test_held_run_is_refused_to_its_starter_and_approved_by_a_second_operator(
        site: Site, page: Page, browser: object) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/runs/{site.held_run}/review")
    expect(page.get_by_role("heading", name="Delivery plan of run 2026-11")).to_be_visible()
    expect(page.get_by_text("You started this run")).to_be_visible()
    # Before -> after per account, with the evidence of who vouched for the new address.
    row = page.get_by_role("row", name="A0002")
    expect(row).to_contain_text("billing2@client2.example")
    expect(row).to_contain_text("ap2@outsourced-ap.fr")
    expect(row).to_contain_text("customer asked by phone")
    expect(page.get_by_role("button", name="Approve and let it send")).to_be_disabled()
    assert axe_violations(page) == []
    screenshot(page, "console-held-run")
    # The disabled button is a courtesy: the server refuses the starter's approval itself.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{site.url}/console/runs/{site.held_run}/decide",
                               form={"csrf": csrf or "", "decision": "approve",
                                     "reason": "looks fine to me"})
    assert answer.status == 403
    assert "cannot approve" in answer.text()
    assert run_status(site, site.held_run) == "held"

    other = page.context.browser.new_context()  # type: ignore[union-attr]
    bob = other.new_page()
    sign_in(bob, site, "bob")
    bob.goto(f"{site.url}/console/runs/{site.held_run}/review")
    bob.get_by_role("button", name="Approve and let it send").click()
    expect(bob.get_by_label("Reason (required)")).to_be_focused()  # required reason
    assert run_status(site, site.held_run) == "held"
    bob.get_by_label("Reason (required)").fill("AP outsourcing confirmed with each customer")
    bob.get_by_role("button", name="Approve and let it send").click()
    expect(bob.get_by_text("Approved by operator:bob@acme-cloud.example")).to_be_visible()
    other.close()
    assert run_status(site, site.held_run) == "approved"
    with site.engine.begin() as conn:
        entry = conn.execute(sa.select(audit_log).where(
            audit_log.c.action == "run.approve")).one()
    assert (entry.actor, entry.channel) == ("operator:bob@acme-cloud.example", "web")


def test_runs_list_and_progress_show_counts_per_state_and_the_canary(
        site: Site, page: Page) -> None:
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/runs")
    page.get_by_role("link", name="2026-10").click()
    progress = page.locator("#progress")
    expect(progress).to_contain_text("sent")
    expect(progress).to_contain_text("Canary: passed")
    assert axe_violations(page) == []
    screenshot(page, "console-run")


def test_sign_in_and_navigation_work_with_the_keyboard_alone(site: Site, page: Page) -> None:
    who = site.operators["carol"]
    page.goto(f"{site.url}/console/sign-in")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Organization").focus()
    for value in (site.slug, who.email, PASSWORD, who.code()):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # on the Sign in button
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("link", name="Runs", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
