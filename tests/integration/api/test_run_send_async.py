"""``POST /v1/runs/{id}/send`` starts the send and answers 202 at once; the send runs in the
server's background senders against the real SMTP test server, and its outcome is read by
``GET /v1/runs/{id}``, in the audit log and in the webhooks' outbox (``invoice.delivered``,
``run.halted``). ``POST /v1/runs/{id}/retry`` re-sends to a corrected contact through the
same use case as ``sealbill run retry``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from tests.integration.api.world import Org, build_org
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401

DONE = ("sent", "incomplete", "halted", "paused")


@pytest.fixture
def served(any_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           smtp_server: SmtpCapture  # noqa: F811
           ) -> Iterator[tuple[TestClient, Org, SmtpCapture]]:
    monkeypatch.setenv("SEALBILL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SEALBILL_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SEALBILL_SMTP_TIMEOUT", "5")
    monkeypatch.setenv("SEALBILL_DKIM", "off")  # the test server checks no signature
    monkeypatch.setenv("SEALBILL_FILES_DIR", str(tmp_path / "files"))
    org = build_org(any_engine, "alpha", 1)
    with TestClient(create_app(any_engine, rate=10_000, burst=10_000)) as client:
        yield client, org, smtp_server


def _admin(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.keys['admin']}"}


def _ready(client: TestClient, org: Org) -> str:
    """The organization's run rendered and planned, a webhook endpoint listening to all."""
    run, headers = org.ids["run_id"], _admin(org)
    assert client.post("/v1/webhooks", headers=headers, json={
        "url": "https://93.184.216.34/hooks", "events": ["*"]}).status_code == 201
    assert client.post(f"/v1/runs/{run}/render", headers=headers).status_code == 200
    planned = client.post(f"/v1/runs/{run}/plan", headers=headers, json={})
    assert planned.status_code == 200 and planned.json()["status"] == "approved", planned.text
    return run


def _settled(client: TestClient, org: Org, run: str, seconds: float = 60.0) -> dict[str, Any]:
    """Poll the run as a client would, until the send is over."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data: dict[str, Any] = client.get(f"/v1/runs/{run}", headers=_admin(org)).json()
        if data["status"] in DONE:
            return data
        time.sleep(0.05)
    raise AssertionError(f"run {run} still {data['status']} after {seconds} s")


def _events(client: TestClient, org: Org) -> list[str]:
    return [m["type"] for m in client.get("/v1/webhooks/messages?limit=1000",
                                           headers=_admin(org)).json()["items"]]


def _audit(client: TestClient, org: Org, action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/v1/audit?action={action}&limit=1000",
                                             headers=_admin(org)).json()["items"]
    return items


def test_send_answers_202_sending_and_the_outcome_is_read_by_get_and_webhooks(
        served: tuple[TestClient, Org, SmtpCapture]) -> None:
    client, org, smtp = served
    run = _ready(client, org)
    smtp.slow_seconds, smtp.faults = 2.0, type(smtp.faults)(["slow"])  # a slow relay:
    # the send outlives the request, whose answer comes first
    started = time.monotonic()
    response = client.post(f"/v1/runs/{run}/send", headers=_admin(org))
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 2
    body = response.json()
    assert body["status"] == "sending" and body["run_id"] == run
    assert response.headers["location"] == f"/v1/runs/{run}" == body["status_url"]
    [accepted] = _audit(client, org, "run.send")
    assert accepted["after"] == {"status": "sending", "accepted": True}
    assert accepted["before"] == {"status": "approved"}

    done = _settled(client, org, run)
    assert done["status"] == "sent" and done["outbox"]["sent"] == 1, done
    assert smtp.all_recipients() >= {"ap@alpha-billing.fr"}
    outcome = _audit(client, org, "run.send")[-1]
    assert outcome["after"]["status"] == "sent"
    assert outcome["api_key"] == org.keys["admin"][:16]
    assert "invoice.delivered" in _events(client, org)


def test_a_run_the_guard_halts_is_halted_for_get_and_the_webhook(
        served: tuple[TestClient, Org, SmtpCapture]) -> None:
    client, org, smtp = served
    run = _ready(client, org)
    unlinked = client.post(f"/v1/contacts/{org.ids['contact_id']}/unlink", headers=_admin(org),
                           json={"account": org.ids["account_id"]})
    assert unlinked.status_code == 200, unlinked.text  # planned, then no longer entitled
    assert client.post(f"/v1/runs/{run}/send", headers=_admin(org)).status_code == 202
    done = _settled(client, org, run)
    assert done["status"] == "halted", done
    assert "ap@alpha-billing.fr" not in smtp.all_recipients()
    assert {"run.halted", "guard.violation"} <= set(_events(client, org))
    assert _audit(client, org, "run.send")[-1]["after"]["status"] == "halted"


def test_the_same_idempotency_key_replays_the_202_and_sends_once(
        served: tuple[TestClient, Org, SmtpCapture]) -> None:
    client, org, smtp = served
    run = _ready(client, org)
    headers = {**_admin(org), "Idempotency-Key": "send-2026-11"}
    first = client.post(f"/v1/runs/{run}/send", headers=headers)
    again = client.post(f"/v1/runs/{run}/send", headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert _settled(client, org, run)["status"] == "sent"
    assert len([m for m in smtp.accepted if "ap@alpha-billing.fr" in m.rcpt_tos]) == 1
    assert [e["after"].get("accepted") for e in _audit(client, org, "run.send")] == [True, None]


def test_a_send_refused_before_it_starts_writes_nothing(
        served: tuple[TestClient, Org, SmtpCapture],
        monkeypatch: pytest.MonkeyPatch) -> None:
    client, org, _ = served
    run = _ready(client, org)
    monkeypatch.delenv("SEALBILL_DKIM")  # no key and no SEALBILL_DKIM=off: never unsigned
    refused = client.post(f"/v1/runs/{run}/send", headers=_admin(org))
    assert refused.status_code == 422 and "DKIM" in refused.text
    assert client.get(f"/v1/runs/{run}", headers=_admin(org)).json()["status"] == "approved"
    assert _audit(client, org, "run.send") == []


def test_retry_over_http_resends_to_the_corrected_contact_only(
        served: tuple[TestClient, Org, SmtpCapture]) -> None:
    client, org, smtp = served
    headers, account = _admin(org), org.ids["account_id"]
    old, new, kept = "ap@alpha-billing.fr", "ap-new@alpha-billing.fr", "books@alpha-billing.fr"
    second = client.post(f"/v1/accounts/{account}/contacts", headers=headers,
                         json={"email": kept}).json()["id"]
    assert client.post(f"/v1/contacts/{second}/vouch", headers=headers, json={
        "account": account, "reason": "known to us"}).status_code == 200
    run = _ready(client, org)
    smtp.reject_rcpt[old] = f"550 5.1.1 <{old}>: Recipient address rejected"
    assert client.post(f"/v1/runs/{run}/send", headers=headers).status_code == 202
    sent = _settled(client, org, run)
    assert [u["recipient"] for u in sent["undelivered"]] == [old], sent
    invoice = org.refs["invoice_number"]

    early = client.post(f"/v1/runs/{run}/retry", headers=headers,
                        json={"invoice": invoice, "reason": "not corrected yet"})
    assert early.status_code == 409, early.text  # nothing to re-send to: nothing queued
    contact = org.ids["contact_id"]
    for path, body in ((f"/v1/contacts/{contact}/change-address", {"email": new}),
                       (f"/v1/contacts/{contact}/vouch",
                        {"account": org.ids["account_id"], "reason": "confirmed by phone"}),
                       (f"/v1/contacts/{contact}/clear-bounce",
                        {"reason": "address corrected by the customer"})):
        assert client.post(path, headers=headers, json=body).status_code == 200, path
    retried = client.post(f"/v1/runs/{run}/retry", headers=headers,
                          json={"invoice": invoice, "reason": "address corrected"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["queued"] == [invoice]
    assert retried.json()["corrected"] == [[old, new]]
    [entry] = _audit(client, org, "run.retry")
    assert entry["after"]["corrected"] == [[old, new]]
    assert client.post(f"/v1/runs/{run}/send", headers=headers).status_code == 202
    assert _settled(client, org, run)["status"] == "sent"
    assert len([m for m in smtp.accepted if new in m.rcpt_tos]) == 1
    assert len([m for m in smtp.accepted if kept in m.rcpt_tos]) == 1  # never again
    assert not [m for m in smtp.accepted if old in m.rcpt_tos]


def test_retry_is_for_approvers_and_administrators(
        served: tuple[TestClient, Org, SmtpCapture]) -> None:
    client, org, _ = served
    run = org.ids["run_id"]
    for role, status in (("billing", 403), ("read-only", 403)):
        answer = client.post(f"/v1/runs/{run}/retry", json={"reason": "try again"},
                             headers={"Authorization": f"Bearer {org.keys[role]}"})
        assert answer.status_code == status, (role, answer.text)
    bad = client.post(f"/v1/runs/{run}/retry", headers=_admin(org), json={"reason": ""})
    assert bad.status_code == 422 and "reason" in bad.text
