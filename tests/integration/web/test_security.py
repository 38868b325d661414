"""Security of the web app, walked over every route it has (not a hand-picked list):

- a portal session reaching, by any id in any URL, anything of another account: 404, as for an
  id that does not exist;
- every POST without a CSRF token, or with another session's: 403, and nothing written;
- the Content-Security-Policy and the other headers on every page;
- every page (console and portal) in Chromium: no serious or critical axe-core violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page
from starlette.routing import Route

from sealbill.app import ids, misdelivery, sessions
from sealbill.store.parties import portal_sessions
from sealbill.store.schema import audit_log, contact_events, contacts, invoices
from sealbill.web import ROUTERS
from sealbill.web.security import CSP, derived_token
from tests.integration.web.conftest import axe_violations, screenshot
from tests.integration.web.site import PASSWORD, SECRET, Site


def routes(site: Site) -> list[Route]:
    """Every route of the web app: those of its routers and its own."""
    own = [r for r in site.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    return [r for router in ROUTERS for r in router.routes if isinstance(r, Route)] + own


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


class Browserless:
    """An HTTP client holding a session cookie (sent by hand: the cookie is Secure and this
    test talks plain HTTP to loopback, as the browser does)."""

    def __init__(self, site: Site, cookie: str, value: str, csrf: str) -> None:
        self.client = httpx.Client(base_url=site.url, follow_redirects=False,
                                   headers={"Cookie": f"{cookie}={value}; sb_pre=pre-token"})
        self.csrf = csrf

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def post(self, path: str, form: dict[str, str] | None = None) -> httpx.Response:
        return self.client.post(path, data=form or {})


def operator_session(site: Site, name: str) -> Browserless:
    who = site.operators[name]
    token, _ = sessions.sign_in(site.engine, who.email, PASSWORD, who.code(), site.slug)
    return Browserless(site, "sb_console", token, derived_token(SECRET, token))


def portal_session(site: Site, contact_id: int, account_id: int) -> Browserless:
    secret = portal_sessions.create(site.engine, org_id=site.org_id, contact_id=contact_id,
                                    account_id=account_id)
    live = portal_sessions.load(site.engine, secret)
    assert live is not None
    return Browserless(site, "sb_portal", secret, live.csrf_token)


@pytest.fixture
def customer(site: Site) -> Iterator[Browserless]:
    with site.engine.begin() as conn:
        contact = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.email == "billing1@client1.example")).scalar_one()
    yield portal_session(site, int(contact), site.scenario.account_ids["A0001"])


def foreign_ids(site: Site) -> dict[str, str]:
    """Public ids of objects of *another* account (A0002) of the same organization."""
    with site.engine.begin() as conn:
        invoice = conn.execute(sa.select(invoices.c.id).where(
            invoices.c.account_reference == "A0002", invoices.c.number.is_not(None))
        ).scalars().first()
        contact = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.email == "billing2@client2.example")).scalar_one()
        return {"ref": ids.encode(conn, site.org_id, "invoice", int(invoice)),
                "contact_ref": ids.encode(conn, site.org_id, "contact", int(contact))}


def test_every_portal_route_answers_404_for_another_accounts_ids(
        site: Site, customer: Browserless) -> None:
    foreign = foreign_ids(site)
    walked = []
    for route in routes(site):
        names = set(route.param_convertors) - {"slug", "kind", "token"}
        if not route.path.startswith("/portal/") or not names:
            continue
        for kind in ("pdf", "xml"):
            path = fill(route.path, {"slug": site.slug, "kind": kind, **foreign})
            for method in sorted(route.methods or ()):
                if method == "HEAD":
                    continue
                answer = customer.get(path) if method == "GET" else customer.post(
                    path, {"csrf": customer.csrf})
                assert answer.status_code == 404, (method, path, answer.status_code)
                assert "billing2@client2.example" not in answer.text
                walked.append((method, route.path))
    assert {p for _, p in walked} == {"/portal/{slug}/invoices/{ref}/{kind}",
                                      "/portal/{slug}/contacts/{contact_ref}/remove"}
    with site.engine.begin() as conn:  # the colleague of another account was not removed
        events = conn.execute(sa.select(contact_events.c.event).join(
            contacts, contacts.c.id == contact_events.c.contact_id).where(
            contacts.c.email == "billing2@client2.example")).scalars().all()
    assert "revoked" not in events
    own = customer.get(f"/portal/{site.slug}/invoices")
    assert own.status_code == 200 and "F-0000" in own.text


FORM = {"reason": "a reason long enough", "invoice": "F-000001", "email": "new@client99.example",
        "role": "admin", "plan": "basic", "when": "now", "started_on": "2026-12-01",
        "name": "Renamed", "city": "Elsewhere", "notify": "no", "cause": "a cause",
        "taken": "a measure", "notification_type": "initial",
        "contact": "billing@client99.example", "account": "Z0001", "decision": "reject"}


def test_no_console_route_reaches_another_organizations_objects(site: Site) -> None:
    """Alice administers acme-cloud; every console route with an id in its URL, given the
    ids of another organization's account, contact, subscription, run, invoice, incident and
    report, answers 404 (as for an id that does not exist) and changes nothing there."""
    other = site.other_org
    assert other is not None
    alice = operator_session(site, "alice")
    with site.engine.begin() as conn:
        audit_before = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar()
    walked = set()
    for route in routes(site):
        names = set(route.param_convertors) - {"kind"}
        if not route.path.startswith("/console/") or not names:
            continue
        values = {**other, "kind": "pdf", "event_ref": "use_x"}
        if route.path.startswith("/console/invoices/"):
            values["ref"] = other["invoice_ref"]
        path = fill(route.path, values)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            answer = alice.get(path) if method == "GET" else alice.post(
                path, {"csrf": alice.csrf, **FORM})
            assert answer.status_code == 404, (method, path, answer.status_code)
            for private in ("Other Org Client", "billing@client99.example", "Z0001"):
                assert private not in answer.text, (method, path, private)
            walked.add(route.path)
    assert len(walked) >= 25, sorted(walked)
    assert {"/console/incidents/{incident_id}/widen",
            "/console/incidents/{incident_id}/revoke-tokens",
            "/console/incidents/{incident_id}/rotate",
            "/console/runs/{run_ref}/retry-failed",
            "/console/accounts/{ref}/contacts/{contact_ref}/vouch"} <= walked
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                            ).scalar() == audit_before


def test_every_post_without_or_with_a_wrong_csrf_token_is_refused(
        site: Site, customer: Browserless) -> None:
    operator = operator_session(site, "alice")
    token = misdelivery.signed_token(site.engine, site.org_id, site.scenario.invoice_ids[0],
                                     SECRET)
    values = {"slug": site.slug, "run_ref": site.held_run, "report_id": "1",
              "contact_ref": foreign_ids(site)["contact_ref"], "token": token, "ref": "A0001",
              "event_ref": "use_x", "incident_id": "1", "sub_ref": "sub-A0001"}
    with site.engine.begin() as conn:
        audit_before = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar()
    posts = [r for r in routes(site) if "POST" in (r.methods or ())]
    assert len(posts) >= 14
    assert "/console/incidents" in {r.path for r in posts}  # opening from the ledger
    for route in posts:
        who = operator if route.path.startswith("/console") else customer
        path = fill(route.path, values)
        for form in ({}, {"csrf": "not-the-token"}, {"csrf": "pre-token-of-someone-else"}):
            answer = who.post(path, {**form, "reason": "x" * 10, "decision": "reject",
                                     "email": "x@example.org"})
            assert answer.status_code == 403, (path, form, answer.status_code)
    with site.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                            ).scalar() == audit_before


def test_every_page_carries_the_csp_and_security_headers(
        site: Site, customer: Browserless) -> None:
    operator = operator_session(site, "carol")
    values = {"slug": site.slug, "run_ref": site.first_run, "ref": "A0001",
              "incident_id": "1", "kind": "pdf", "code": "x", "token": "x.y",
              "contact_ref": "con_x", "report_id": "1"}
    seen = 0
    for route in routes(site):
        if "GET" not in (route.methods or ()):
            continue
        who = operator if route.path.startswith("/console") else customer
        answer = who.get(fill(route.path, values))
        assert answer.headers["content-security-policy"] == CSP, route.path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.status_code < 500, (route.path, answer.status_code)
        seen += 1
    assert seen >= 20
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


CONSOLE_PAGES = ["/console/", "/console/runs", "/console/runs/{first_run}",
                 "/console/runs/{held_run}/review", "/console/alerts", "/console/accounts",
                 "/console/accounts/new", "/console/accounts/A0001", "/console/invoices",
                 "/console/ledger",
                 "/console/ledger?account=A0001", "/console/incidents", "/console/catalog"]
PORTAL_PAGES = ["/portal/{slug}/invoices", "/portal/{slug}/deliveries",
                "/portal/{slug}/contacts", "/portal/{slug}/verify?code=unknown"]


def test_every_page_passes_axe_and_runs_no_inline_script(site: Site, page: Page) -> None:
    """Pages of both fronts in French and English; CSP violations would show as console
    errors, and there must be none."""
    from tests.integration.web.test_console import sign_in

    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, site, "alice")
    screenshot(page, "console-dashboard")
    for lang in ("en", "fr"):
        for template in CONSOLE_PAGES:
            page.goto(site.url + template.format(first_run=site.first_run,
                                                 held_run=site.held_run))
            assert page.locator("html").get_attribute("lang") == lang
            assert axe_violations(page) == [], template
        page.get_by_label("Language" if lang == "en" else "Langue").select_option("fr")
        page.get_by_role("button", name="Change" if lang == "en" else "Changer",
                         exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text() == "Catalogue"
    assert page.get_by_role("link", name="Tableau de bord").count() == 1
    with site.engine.begin() as conn:
        contact = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.email == "billing1@client1.example")).scalar_one()
    secret = portal_sessions.create(site.engine, org_id=site.org_id, contact_id=int(contact),
                                    account_id=site.scenario.account_ids["A0001"])
    page.context.add_cookies([{"name": "sb_portal", "value": secret, "url": site.url + "/portal",
                               "secure": True, "httpOnly": True, "sameSite": "Strict"}])
    for template in PORTAL_PAGES:
        page.goto(site.url + template.format(slug=site.slug))
        assert axe_violations(page) == [], template
    page.goto(f"{site.url}/portal/{site.slug}/")
    assert axe_violations(page) == []
    assert errors == []
