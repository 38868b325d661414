"""Every route of the API, walked: another organization's objects are 404 (never 403, never
data), no key is 401, a read-only key is 403 on every mutation, and every mutation by a key
leaves an audit entry naming that key's operator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from tests.e2e.catalog_fixture import CATALOG_YAML
from tests.integration.api.world import Org, body_for, build_org, fill
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401


@pytest.fixture
def world(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          smtp_server: SmtpCapture  # noqa: F811
          ) -> Iterator[tuple[TestClient, Org, Org]]:
    monkeypatch.setenv("SEALBILL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SEALBILL_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SEALBILL_DKIM", "off")  # the test server checks no signature
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    a = build_org(sqlite_engine, "alpha", 1)
    b = build_org(sqlite_engine, "beta", 2)
    app = create_app(sqlite_engine, rate=10_000, burst=10_000)
    yield TestClient(app), a, b


def routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the API publishes (its OpenAPI document is the list of routes)."""
    paths = client.get("/openapi.json").json()["paths"]
    found = [(method.upper(), path) for path, item in paths.items() for method in item]
    assert len(found) >= 35  # the walk covers the whole API, not a sample
    return found


def _call(client: TestClient, method: str, path: str, org: Org, key: str | None,
          body_org: Org) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.request(method, fill(path, org), headers=headers,
                              json=body_for(method, path, body_org))
    return response.status_code, response.text


def test_a_key_of_one_organization_gets_404_for_every_object_of_another(world: tuple[
        TestClient, Org, Org]) -> None:
    client, a, b = world
    leaks = []
    for method, path in routes(client):
        status, text = _call(client, method, path, b, a.keys["admin"], b)
        named = "{" in path or (method == "POST" and isinstance(
            body_for(method, path, b), dict) and "account" in body_for(method, path, b))
        if named and status != 404:
            leaks.append((method, path, status, text[:200]))
        sent = fill(path, b) + json.dumps(body_for(method, path, b))
        if any(value in text for value in b.ids.values() if value not in sent):
            leaks.append((method, path, status, "shows an id of the other organization"))
    assert leaks == []


def test_every_route_without_a_key_is_401(world: tuple[TestClient, Org, Org]) -> None:
    client, a, _ = world
    answers = {(m, p): _call(client, m, p, a, None, a)[0] for m, p in routes(client)}
    assert {k: v for k, v in answers.items() if v != 401} == {}
    bad_key = {(m, p): _call(client, m, p, a, "sbk_000000000000_forged", a)[0]
               for m, p in routes(client)}
    assert set(bad_key.values()) == {401}


def test_a_read_only_key_is_403_on_every_mutation(world: tuple[TestClient, Org, Org]) -> None:
    client, a, _ = world
    mutations = [(m, p) for m, p in routes(client) if m in ("POST", "PATCH", "PUT", "DELETE")]
    answers = {(m, p): _call(client, m, p, a, a.keys["read-only"], a) for m, p in mutations}
    assert {k: v for k, v in answers.items() if v[0] != 403} == {}
    reads = [(m, p) for m, p in routes(client) if m == "GET"]
    answers = {(m, p): _call(client, m, p, a, a.keys["read-only"], a)[0] for m, p in reads}
    # 409: a PDF not rendered yet; the audit log is for auditors and administrators, the
    # webhook outbox for administrators.
    assert {k: v for k, v in answers.items() if v not in (200, 409)} == {
        ("GET", "/v1/audit"): 403, ("GET", "/v1/webhooks/messages"): 403}


MUTATION_ORDER = (
    "/v1/organization/identity", "/v1/organization/sending", "/v1/organization/series",
    "/v1/metrics", "/v1/plans", "/v1/catalog/apply", "/v1/plans/{plan_id}/prices",
    "/v1/accounts", "/v1/accounts/{account_id}", "/v1/accounts/{account_id}/contacts",
    "/v1/contacts/{contact_id}/verify", "/v1/contacts/{contact_id}/set-role",
    "/v1/contacts/{contact_id}/vouch", "/v1/contacts/{contact_id}/unlink",
    "/v1/contacts/{contact_id}/change-address", "/v1/usage", "/v1/usage/batch",
    "/v1/usage/{usage_id}/void",
    "/v1/subscriptions", "/v1/subscriptions/{subscription_id}/change-plan",
    "/v1/subscriptions/{subscription_id}/cancel", "/v1/runs/{run_id}/render",
    "/v1/runs/{run_id}/plan", "/v1/runs/{run_id}/set-aside", "/v1/runs/{run_id}/retry",
    "/v1/runs/{run_id}/send", "/v1/runs",
    "/v1/runs/{run_id}/finalize", "/v1/accounts/{account_id}/archive", "/v1/webhooks",
    "/v1/invoices/{invoice_id}/credit-notes", "/v1/invoices/{invoice_id}/void",
    "/v1/bounces", "/v1/contacts/{contact_id}/clear-bounce",
    "/v1/incidents", "/v1/incidents/{incident_id}/updates", "/v1/incidents/{incident_id}/assess",
    "/v1/incidents/{incident_id}/decide", "/v1/incidents/{incident_id}/correct-link",
    "/v1/incidents/{incident_id}/rotate", "/v1/incidents/{incident_id}/contain",
    "/v1/incidents/{incident_id}/drafts", "/v1/incidents/{incident_id}/close",
    "/v1/sending/pause", "/v1/sending/resume",
)


def test_every_mutation_leaves_an_audit_entry_naming_the_keys_operator(world: tuple[
        TestClient, Org, Org]) -> None:
    client, a, _ = world
    mutations = {p for m, p in routes(client) if m in ("POST", "PATCH")}
    # The queue's run start is walked on PostgreSQL (tests/integration/scale/test_api_runs.py):
    # on SQLite it is a 409 that writes nothing.
    walked = set(MUTATION_ORDER) | {"/v1/verifications/confirm", "/v1/runs/{run_id}/approve",
                                    "/v1/runs/enqueue"}
    assert mutations == walked  # a new route must be added to this walk
    headers = {"Authorization": f"Bearer {a.keys['admin']}"}
    missing = []
    for path in MUTATION_ORDER:
        method = "PATCH" if path.startswith("/v1/organization/") or path == \
            "/v1/accounts/{account_id}" else "POST"
        before = _audit_count(client, headers)
        body = body_for(method, path, a)
        if path == "/v1/catalog/apply":  # a real change (a dry run is not one)
            body = {"catalog": CATALOG_YAML.replace(
                "metrics:\n", "metrics:\n  - {code: sms, name: SMS, aggregation: count}\n")}
        target = _fresh_invoice(client, headers, a) if path == \
            "/v1/invoices/{invoice_id}/void" else a
        if path == "/v1/contacts/{contact_id}/clear-bounce":  # a flagged contact to clear
            _flag_bounced(client, a)
        response = client.request(method, fill(path, target), headers=headers, json=body)
        assert response.status_code < 300, (path, response.text)
        entries = client.get("/v1/audit?limit=1000", headers=headers).json()["items"]
        new = entries[before:]
        if not new or any(e["api_key"] != a.keys["admin"][:16] for e in new):
            missing.append(path)
    assert missing == []


def _flag_bounced(client: TestClient, org: Org) -> None:
    """The organization's contact flagged bounced, as the sender flags a refused address."""
    from sealbill.app import ids
    from sealbill.store.delivery.outbox_outcomes import flag_bounced

    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        contact = ids.decode(conn, org.org_id, "contact", org.ids["contact_id"])
        flag_bounced(conn, org.org_id, [contact], "550 5.1.1 user unknown")


def _fresh_invoice(client: TestClient, headers: dict[str, str], org: Org) -> Org:
    """The organization with, as its invoice, one finalized and never credited (the walk
    has credited the first one already): the 2026-12 run it billed, finalized now."""
    listed = client.get("/v1/runs", headers=headers).json()["items"]
    run = next(r["run_id"] for r in listed
                if r["period"] == "2026-12")
    assert client.post(f"/v1/runs/{run}/finalize", headers=headers).status_code == 200
    invoice = client.get(f"/v1/invoices?run_id={run}", headers=headers).json()["items"][0]
    return Org(org.org_id, org.slug, org.keys, {**org.ids, "invoice_id": invoice["id"]})


def _audit_count(client: TestClient, headers: dict[str, str]) -> int:
    return len(client.get("/v1/audit?limit=1000", headers=headers).json()["items"])
