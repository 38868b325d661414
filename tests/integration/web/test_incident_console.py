"""An incident opened from the console's ledger search and contained from its page, in a real
Chromium: the scope from the search, widened with a reason, the kill switch, outstanding
tokens revoked, public ids rotated — each step's state shown, in the timeline and audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from sealbill.app import ids, incident_open
from sealbill.app.errors import Forbidden
from sealbill.store.delivery import switches
from sealbill.store.parties import verification
from sealbill.store.schema import (
    accounts,
    audit_log,
    contact_links,
    delivery_ledger,
    incident_events,
    incidents,
    verification_tokens,
)
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import SECRET, Site
from tests.integration.web.test_console import sign_in


def _ledger_ids(site: Site, account: str) -> set[str]:
    with site.engine.begin() as conn:
        return set(conn.execute(sa.select(delivery_ledger.c.message_id).where(
            delivery_ledger.c.organization_id == site.org_id,
            delivery_ledger.c.account_reference == account)).scalars())


def _incident(site: Site, incident_id: int) -> sa.Row:  # type: ignore[type-arg]
    with site.engine.begin() as conn:
        return conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()


def _outstanding_token(site: Site, account: str) -> None:
    """A verification code of the account's billing contact, not used yet."""
    account_id = site.scenario.account_ids[account]
    with site.engine.begin() as conn:
        contact = conn.execute(sa.select(contact_links.c.contact_id).where(
            contact_links.c.account_id == account_id)).scalars().first()
        verification.issue(conn, site.org_id, int(contact), account_id, SECRET)


def _open_from_search(page: Page, site: Site, account: str, title: str) -> int:
    page.goto(f"{site.url}/console/ledger?account={account}")
    page.get_by_text("Open an incident on the messages of this search").click()
    page.get_by_label("What is suspected (title)").fill(title)
    page.get_by_label("Description").fill("A0002's invoices may have gone to a former employee")
    page.get_by_role("button", name="Open the incident").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_an_incident_opened_from_a_ledger_search_is_widened_and_contained_step_by_step(
        site: Site, page: Page) -> None:
    sign_in(page, site, "alice")
    page.goto(f"{site.url}/console/ledger?account=A0002")
    page.get_by_text("Open an incident on the messages of this search").click()
    assert axe_violations(page) == []
    incident_id = _open_from_search(page, site, "A0002", "Invoices of A0002 misdirected")
    row = _incident(site, incident_id)
    assert set(row.scope["message_ids"]) == _ledger_ids(site, "A0002")
    assert row.record["facts"]["description"].startswith("A0002's invoices")
    assert row.opened_by == f"operator:{site.operators['alice'].email}"

    # Widen with a reason: A0003's messages join, nothing already in scope leaves.
    page.get_by_text("Widen the scope (a ledger search)").click()
    page.locator("#widen-account").fill("A0003")
    page.locator("#widen-reason").fill("the same employee also handled A0003")
    page.get_by_role("button", name="Widen the scope").click()
    widened = set(_incident(site, incident_id).scope["message_ids"])
    assert widened == _ledger_ids(site, "A0002") | _ledger_ids(site, "A0003")
    expect(page.get_by_text(f"{len(widened)} messages in scope")).to_be_visible()
    page.get_by_text("Widen the scope (a ledger search)").click()
    page.locator("#widen-account").fill("A0003")
    page.locator("#widen-reason").fill("once more")
    page.get_by_role("button", name="Widen the scope").click()
    expect(page.get_by_role("alert")).to_contain_text("already in the incident's scope")

    # The contact turns out never to have been entitled: A0002 is an affected account.
    page.get_by_text("Mark a link as never entitled").click()
    page.get_by_label("Contact address").fill("billing2@client2.example")
    page.get_by_label("Account reference").fill("A0002")
    page.get_by_label("Reason (required)").first.fill("left the customer in October")
    page.get_by_role("button", name="Record the correction").click()

    steps = page.get_by_role("table", name="Containment steps")
    expect(steps).to_contain_text("not done")
    page.get_by_role("button", name="Pause all sending (kill switch)").click()
    expect(steps.get_by_role("row").nth(1)).to_contain_text("Paused for this incident")
    with site.engine.begin() as conn:
        assert switches.is_paused(conn, site.org_id)

    _outstanding_token(site, "A0002")
    page.get_by_role("button", name="Revoke outstanding tokens").click()
    expect(steps.get_by_role("row").nth(2)).to_contain_text("revoked: 1")
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(verification_tokens).where(
            verification_tokens.c.account_id == site.scenario.account_ids["A0002"],
            verification_tokens.c.revoked_at.is_(None),
            verification_tokens.c.used_at.is_(None))).scalar() == 0
        before = conn.execute(sa.select(accounts.c.public_id).where(
            accounts.c.reference == "A0002")).scalar_one()
    page.get_by_role("button", name="Rotate the public ids (and revoke their tokens)").click()
    expect(steps.get_by_role("row").nth(3)).to_contain_text("rotated: A0002")
    assert axe_violations(page) == []
    screenshot(page, "console-incident-containment")
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(accounts.c.public_id).where(
            accounts.c.reference == "A0002")).scalar_one() != before
        events = list(conn.execute(sa.select(incident_events.c.event).where(
            incident_events.c.incident_id == incident_id).order_by(incident_events.c.id)
        ).scalars())
        audited = set(conn.execute(sa.select(audit_log.c.action).where(
            audit_log.c.object_kind == "incident",
            audit_log.c.object_id == ids.encode(conn, site.org_id, "incident", incident_id)
        )).scalars())
        switches.set_paused(conn, site.org_id, False, actor="test", reason="test over")
    assert events[:3] == ["opened", "updated", "scope_changed"]
    assert {"sending_paused", "tokens_revoked", "rotated"} <= set(events)
    assert {"incident.open", "incident.widen", "incident.contain",
            "incident.revoke_tokens", "incident.rotate"} <= audited


def test_a_bad_open_form_writes_nothing_and_names_its_field(site: Site, page: Page) -> None:
    with site.engine.begin() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar()
    sign_in(page, site, "bob")  # an approver may open one
    page.goto(f"{site.url}/console/ledger?account=A0001")
    page.get_by_text("Open an incident on the messages of this search").click()
    page.get_by_label("What is suspected (title)").fill("Suspected")
    page.locator("#open-aware_at").fill("2026-11-01T10:00")
    page.get_by_role("button", name="Open the incident").click()
    expect(page.locator("#open-aware_at-error")).to_contain_text("offset")
    assert axe_violations(page) == []
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(incidents)
                            ).scalar() == count


def test_a_read_only_operator_is_offered_no_incident_step_and_is_refused_one(
        site: Site, page: Page) -> None:
    with site.engine.begin() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar()
    sign_in(page, site, "carol")
    page.goto(f"{site.url}/console/ledger?account=A0001")
    expect(page.locator("tbody tr")).not_to_have_count(0)
    expect(page.get_by_text("Open an incident on the messages of this search")).to_have_count(0)
    page.goto(f"{site.url}/console/incidents")
    page.get_by_role("link").filter(has_text="Invoices of A0002").first.click()
    expect(page.get_by_role("table", name="Containment steps")).to_be_visible()
    expect(page.get_by_role("button", name="Revoke outstanding tokens")).to_have_count(0)
    with pytest.raises(Forbidden):
        incident_open.open_from_ledger(
            site.engine, site.actor("carol"), site.org_id, title="x", description="",
            aware_at="2026-11-01T10:00+01:00", search={"account": "A0001"})
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(incidents)
                            ).scalar() == count
