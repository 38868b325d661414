"""The quick-start through HTTP only: after the organization, its operators and their keys
are created at the terminal (the root of trust), every step is an API call (httpx against the
ASGI app): catalog, accounts, contacts verified by code, subscriptions, usage, a held run
approved by a second operator, delivery to a real SMTP server, a prorated plan change."""

from __future__ import annotations

import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sealbill.api.app import create_app
from sealbill.app import operators, organizations
from sealbill.app.context import local_actor
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.e2e.catalog_fixture import ACCOUNTS, CATALOG_YAML, ORG
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401


class Api:
    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}
        self.count = 0

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        self.count += 1
        headers = dict(self.headers)
        if method == "POST":
            headers["Idempotency-Key"] = f"step-{self.count}"
        response = self.client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (method, path, response.text)
        return response.json()


@pytest.fixture
def keys(tmp_path: Path, smtp_server: SmtpCapture,  # noqa: F811
         monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, str, str]:
    monkeypatch.setenv("SEALBILL_DKIM", "off")  # the test server checks no signature
    monkeypatch.setenv("SEALBILL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SEALBILL_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    engine = create_engine(f"sqlite:///{tmp_path / 'sealbill.sqlite'}")
    upgrade(engine)
    root = local_actor()
    org_id = 1
    organizations.create(engine, root, ORG)
    made = []
    for email, role in (("alice@acme.example", "admin"), ("bob@acme.example", "approver")):
        operators.create_operator(engine, root, email, email[:3], "correct horse battery")
        made.append(operators.create_key(engine, root, org_id, email, role)["key"])
    return TestClient(create_app(engine)), made[0], made[1]


def test_the_quick_start_through_http_only(keys: tuple[TestClient, str, str],
                                           smtp_server: SmtpCapture) -> None:  # noqa: F811
    client, alice_key, bob_key = keys
    alice, bob = Api(client, alice_key), Api(client, bob_key)
    diff = alice("POST", "/v1/catalog/apply", {"catalog": CATALOG_YAML, "dry_run": True})
    assert diff["create"] == 3 and alice("GET", "/v1/plans") == []
    alice("POST", "/v1/catalog/apply", {"catalog": CATALOG_YAML})
    assert alice("POST", "/v1/catalog/apply", {"catalog": CATALOG_YAML})["unchanged"] == 3

    account_ids, contact_ids = {}, {}
    for account in ACCOUNTS:
        created = alice("POST", "/v1/accounts", account, status=201)
        assert created["id"].startswith("acc_")
        account_ids[account["reference"]] = created["id"]
        email = f"ap@{account['reference'].lower()}-client.fr"
        contact = alice("POST", f"/v1/accounts/{created['id']}/contacts", {"email": email},
                        status=201)
        contact_ids[account["reference"]] = contact["id"]
        alice("POST", f"/v1/contacts/{contact['id']}/verify", {"account": created["id"]})
        text = message_from_bytes(smtp_server.accepted[-1].data, policy=default).get_body(
            ("plain",)).get_content()  # type: ignore[union-attr]
        code = text.split("Code : ", 1)[1].split()[0]
        confirmed = alice("POST", "/v1/verifications/confirm", {"code": code})
        assert confirmed["links"][0]["status"] == "verified"

    subs = {}
    for ref, acc in account_ids.items():
        subs[ref] = alice("POST", "/v1/subscriptions", {
            "account": acc, "plan": "starter", "started_on": "2026-10-01"}, status=201)["id"]
        alice("POST", "/v1/usage", {"event_id": f"u-{ref}", "account": acc,
                                    "metric": "api_calls", "timestamp": "2026-10-05T10:00:00Z",
                                    "value": "5000"}, status=201)
    bad = alice("POST", "/v1/usage", {"event_id": "bad", "account": account_ids["C002"],
                                      "metric": "api_calls",
                                      "timestamp": "2026-10-06T10:00:00Z",
                                      "value": "99999999"}, status=201)
    alice("POST", f"/v1/usage/{bad['id']}/void", {"reason": "counter reset"})

    run = _cycle(alice, bob, "2026-11", hold_first=True)
    page = alice("GET", f"/v1/invoices?run_id={run}&limit=1")
    items = page["items"] + alice("GET", f"/v1/invoices?run_id={run}&limit=1&cursor="
                                         f"{page['next_cursor']}")["items"]
    assert sorted(i["total_excl_minor"] for i in items) == [3500, 3500]
    assert len(smtp_server.accepted) == 4  # two verification mails, two invoices
    pdf = client.get(f"/v1/invoices/{items[0]['id']}/pdf", headers=alice.headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    alice("POST", f"/v1/subscriptions/{subs['C001']}/change-plan",
          {"plan": "pro", "on": "2026-11-16"})
    run = _cycle(alice, bob, "2026-12", hold_first=False)
    second = alice("GET", f"/v1/invoices?run_id={run}")["items"]
    assert sorted(i["total_excl_minor"] for i in second) == [3000, 12000]
    assert len(smtp_server.accepted) == 6
    approvals = alice("GET", "/v1/audit?action=run.approve")["items"]
    assert {e["actor"] for e in approvals} == {"operator:bob@acme.example"}


def _cycle(alice: Api, bob: Api, period: str, *, hold_first: bool) -> str:
    run = alice("POST", "/v1/runs", {"period": period}, status=201)["run_id"]
    alice("POST", f"/v1/runs/{run}/finalize")
    alice("POST", f"/v1/runs/{run}/render")
    policy = {"first_cycle": "hold"} if hold_first else None
    planned = alice("POST", f"/v1/runs/{run}/plan", {"policy": policy})
    assert planned["status"] == "held" or not hold_first
    if planned["status"] == "held":
        refused = alice("POST", f"/v1/runs/{run}/approve", {"reason": "mine"}, status=403)
        assert "cannot approve" in refused["detail"]
        bob("POST", f"/v1/runs/{run}/approve", {"reason": "checked the diff"})
    accepted = alice("POST", f"/v1/runs/{run}/send", status=202)
    assert accepted["status"] == "sending", accepted  # sent in the background: poll it
    deadline = time.monotonic() + 60
    sent = alice("GET", f"/v1/runs/{run}")
    while sent["status"] == "sending" and time.monotonic() < deadline:
        time.sleep(0.05)
        sent = alice("GET", f"/v1/runs/{run}")
    assert sent["status"] == "sent", sent
    return str(run)
