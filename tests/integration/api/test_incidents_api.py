"""Incidents, the kill switch and the delivery ledger over HTTP: opened with its
``incident.opened`` webhook in one transaction, read with its blast radius and clock, facts and
containment steps recorded, drafts written, closed; the ledger searched and verified."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.app import incidents, operators, webhooks
from sealbill.app.context import local_actor
from sealbill.store.schema import incidents as incidents_table
from sealbill.store.schema import webhook_messages
from tests.integration.incident.world import at, swapped_world

ROOT = local_actor()


def _client(engine: Engine) -> tuple[TestClient, int, dict[str, dict[str, str]]]:
    """The incident world (a swapped-contacts run in the ledger) and a key per role."""
    world = swapped_world(engine)
    keys = {}
    for role in ("admin", "billing", "read-only"):
        email = f"{role}@ops.example"
        operators.create_operator(engine, ROOT, email, role, "correct horse battery")
        key = operators.create_key(engine, ROOT, world.org_id, email, role)["key"]
        keys[role] = {"Authorization": f"Bearer {key}"}
    return TestClient(create_app(engine, rate=10_000, burst=10_000)), world.org_id, keys


def _open(client: TestClient, headers: dict[str, str], **extra: Any) -> Any:
    body = {"title": "Invoices sent to the wrong customers",
            "aware_at": at(60).isoformat(), "window_from": at(-1).isoformat(),
            "window_to": at(30).isoformat(), **extra}
    return client.post("/v1/incidents", json=body, headers=headers)


def test_an_incident_opened_over_http_shows_its_radius_and_queues_its_webhook(
        any_engine: Engine) -> None:
    client, org_id, keys = _client(any_engine)
    endpoint = webhooks.add_endpoint(any_engine, ROOT, org_id, "https://93.184.216.34/h",
                                     ["incident.opened"])
    opened = _open(client, keys["billing"])
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert incident["id"].startswith("inc_") and incident["state"] == "open"
    assert incident["messages_in_scope"] == 4
    assert incident["status"]["clock"]["aware_at"] == at(60).isoformat()
    shown = client.get(f"/v1/incidents/{incident['id']}", headers=keys["read-only"]).json()
    assert shown["radius"] == incident["radius"] and shown["radius"]["exposures"]
    assert {e["account_id"][:4] for e in shown["radius"]["exposures"]} == {"acc_"}
    assert {e["contact_id"][:4] for e in shown["radius"]["exposures"]} == {"con_"}
    assert [e["event"] for e in shown["events"]] == ["opened"]
    with any_engine.begin() as conn:
        message = conn.execute(sa.select(webhook_messages)).one()
    assert message.event_type == "incident.opened"
    assert message.payload["data"]["incident_id"] == incident["id"]
    assert message.endpoint_id is not None and endpoint["id"].startswith("whk_")
    listed = client.get("/v1/incidents", headers=keys["read-only"]).json()
    assert [i["id"] for i in listed] == [incident["id"]]


def test_an_incident_and_its_webhook_commit_together_or_not_at_all(sqlite_engine: Engine
                                                                   ) -> None:
    world = swapped_world(sqlite_engine)
    webhooks.add_endpoint(sqlite_engine, ROOT, world.org_id, "https://93.184.216.34/h", ["*"])
    with sqlite_engine.begin() as conn:  # the outbox refuses writes: a fault in the database
        conn.exec_driver_sql("CREATE TRIGGER outbox_down BEFORE INSERT ON webhook_messages "
                             "BEGIN SELECT RAISE(ABORT, 'outbox down'); END")
    with pytest.raises(sa.exc.IntegrityError, match="outbox down"):
        incidents.open_incident(sqlite_engine, ROOT, world.org_id, {
            "title": "Wrong recipients", "aware_at": at(60).isoformat(),
            "pause_sending": True})
    with sqlite_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(incidents_table)
                            ).scalar() == 0  # no incident without its event


def test_facts_containment_steps_and_closing_are_recorded_refused_when_wrong(
        sqlite_engine: Engine) -> None:
    client, _, keys = _client(sqlite_engine)
    naive = client.post("/v1/incidents", headers=keys["admin"], json={
        "title": "x", "aware_at": "2026-05-14T13:00:00"})
    assert naive.status_code == 422
    assert [e["field"] for e in naive.json()["errors"]] == ["aware_at"]
    future = _open(client, keys["admin"], aware_at="2999-01-01T00:00:00Z")
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "aware_at"
    ref = _open(client, keys["admin"]).json()["id"]
    assert client.post(f"/v1/incidents/{ref}/updates", headers=keys["read-only"],
                       json={"cause": "x"}).status_code == 403
    updated = client.post(f"/v1/incidents/{ref}/updates", headers=keys["billing"], json={
        "cause": "a migration swapped contacts", "measures_taken": ["links corrected"]})
    assert updated.status_code == 200, updated.text
    assert updated.json()["facts"]["cause"] == "a migration swapped contacts"
    assert updated.json()["measures"]["taken"] == ["links corrected"]
    contained = client.post(f"/v1/incidents/{ref}/contain", headers=keys["billing"]).json()
    assert contained["containment"]["by"] == "operator:billing@ops.example"
    assert client.get("/v1/sending", headers=keys["read-only"]).json()["paused"] is True
    drafts = client.post(f"/v1/incidents/{ref}/drafts", headers=keys["billing"]).json()
    assert any(f["kind"] == "art33" and f["lang"] == "fr" and f["text"]
               for f in drafts["files"])
    closed = client.post(f"/v1/incidents/{ref}/close", headers=keys["billing"],
                         json={"reason": "customers warned, links corrected"})
    assert closed.json()["state"] == "closed"
    again = client.post(f"/v1/incidents/{ref}/close", headers=keys["billing"],
                        json={"reason": "twice"})
    assert again.status_code == 409
    events = [e["event"] for e in closed.json()["events"]]
    assert events == ["opened", "updated", "sending_paused", "drafts_written", "closed"]
    audit = client.get("/v1/audit?limit=100", headers=keys["admin"]).json()["items"]
    assert {"incident.open", "incident.update", "incident.contain", "incident.drafts",
            "incident.close"} <= {e["action"] for e in audit}


def test_pause_is_for_those_who_run_billing_and_resume_needs_an_approver(
        sqlite_engine: Engine) -> None:
    client, _, keys = _client(sqlite_engine)
    paused = client.post("/v1/sending/pause", headers=keys["billing"],
                         json={"reason": "a customer reported a stranger's invoice"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    refused = client.post("/v1/sending/resume", headers=keys["billing"],
                          json={"reason": "checked"})
    assert refused.status_code == 403
    assert client.post("/v1/sending/resume", headers=keys["admin"],
                       json={"reason": ""}).status_code == 422
    resumed = client.post("/v1/sending/resume", headers=keys["admin"],
                          json={"reason": "report checked"}).json()
    assert resumed == {**resumed, "paused": False, "changed_by": "operator:admin@ops.example",
                       "reason": "report checked"}


def test_the_ledger_is_searched_by_address_account_invoice_and_time_a_page_at_a_time(
        any_engine: Engine) -> None:
    client, _, keys = _client(any_engine)
    headers = keys["read-only"]
    every = client.get("/v1/ledger?limit=3", headers=headers).json()
    assert [r["account"] for r in every["items"]] == ["ACC-4", "ACC-3", "ACC-2"]
    rest = client.get(f"/v1/ledger?limit=3&cursor={every['next_cursor']}",
                      headers=headers).json()
    assert [r["account"] for r in rest["items"]] == ["ACC-1"] and rest["next_cursor"] is None
    accountant = client.get("/v1/ledger?address=BOOKS@accountant.test",
                            headers=headers).json()["items"]
    assert [r["account"] for r in accountant] == ["ACC-4", "ACC-3"]
    assert [r["account"] for r in client.get(
        "/v1/ledger", params={"account": "ACC-2"}, headers=headers).json()["items"]] == ["ACC-2"]
    invoice = every["items"][0]["invoice"]
    assert [r["invoice"] for r in client.get(
        "/v1/ledger", params={"invoice": invoice}, headers=headers).json()["items"]] == [invoice]
    window = client.get("/v1/ledger", params={"since": at(5).isoformat(),
                                              "until": at(10).isoformat()},
                        headers=headers).json()["items"]
    assert [r["account"] for r in window] == ["ACC-3", "ACC-2"]
    assert client.get("/v1/ledger?cursor=zz", headers=headers).status_code == 422
    verified = client.get("/v1/ledger/verify", headers=headers).json()
    assert verified == {"ok": True, "rows": 4, "problems": []}


def test_a_ledger_page_by_address_is_full_and_a_look_alike_address_has_no_next_page(
        sqlite_engine: Engine) -> None:
    """One matcher (app.ledger_query): a part of an address matches nothing, and the listing
    says there is nothing more rather than handing out a cursor to an empty page."""
    client, _, keys = _client(sqlite_engine)
    headers = keys["read-only"]
    first = client.get("/v1/ledger?address=books@accountant.test&limit=1",
                       headers=headers).json()
    assert [r["account"] for r in first["items"]] == ["ACC-4"]
    assert {"document_kind", "recipients", "row_hash"} <= set(first["items"][0])
    second = client.get(f"/v1/ledger?address=books@accountant.test&limit=1"
                        f"&cursor={first['next_cursor']}", headers=headers).json()
    assert [r["account"] for r in second["items"]] == ["ACC-3"]
    part = client.get("/v1/ledger?address=s@accountant.test&limit=1", headers=headers).json()
    assert part == {"items": [], "next_cursor": None}


def _audited(engine: Engine, ref: str) -> list[str]:
    from sealbill.store.schema import audit_log

    with engine.begin() as conn:
        return list(conn.execute(sa.select(audit_log.c.action).where(
            audit_log.c.object_kind == "incident", audit_log.c.object_id == ref)
            .order_by(audit_log.c.id)).scalars())


def test_severity_and_decision_are_recorded_over_http_once_per_key_refused_when_wrong(
        any_engine: Engine) -> None:
    client, _, keys = _client(any_engine)
    ref = _open(client, keys["admin"]).json()["id"]
    url = f"/v1/incidents/{ref}"
    change = {"changes": {"cb_confidentiality": "0.5"}}
    unjustified = client.post(f"{url}/assess", headers=keys["billing"], json=change)
    read_only = client.post(f"{url}/assess", headers=keys["read-only"], json={
        **change, "justifications": {"cb_confidentiality": "forwarded"}})
    bad_name = client.post(f"{url}/assess", headers=keys["billing"],
                           json={"changes": {"size": "3"}})
    assessed = client.post(f"{url}/assess", headers=keys["billing"], json={
        **change, "justifications": {"cb_confidentiality": "recipients may forward it"}})
    bad_status = client.post(f"{url}/decide", headers=keys["billing"], json={
        "notify": True, "reason": "invoices reached other customers",
        "communication": "maybe"})
    once = {**keys["billing"], "Idempotency-Key": "decide-1"}
    body = {"notify": True, "reason": "invoices reached other customers",
            "communication": "planned"}
    decided = client.post(f"{url}/decide", headers=once, json=body)
    replayed = client.post(f"{url}/decide", headers=once, json=body)
    unexplained = client.post(f"{url}/decide", headers=keys["billing"], json={
        **body, "communication": "not_required"})

    assert unjustified.status_code == 422 and unjustified.json()["errors"][0]["field"] == \
        "justification"
    assert read_only.status_code == 403
    assert bad_name.status_code == 422 and bad_name.json()["errors"][0]["field"].startswith(
        "changes")
    assert assessed.status_code == 200, assessed.text
    assert assessed.json()["adjustments"]["cb_confidentiality"]["to"] == "0.5"
    assert assessed.json()["level"] in ("low", "medium", "high", "very high")
    assert bad_status.status_code == 422
    assert [e["field"] for e in bad_status.json()["errors"]] == ["communication"]
    assert decided.status_code == 200, decided.text
    assert decided.json()["notify"] is True and decided.json()["recommended"]["reasoning"]
    assert replayed.json() == decided.json()
    assert unexplained.status_code == 422
    assert [e["field"] for e in unexplained.json()["errors"]] == ["communication_reason"]
    closed = client.post(f"{url}/close", headers=keys["billing"], json={"reason": "handled"})
    assert closed.status_code == 200
    late = client.post(f"{url}/decide", headers=keys["billing"], json=body)
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    shown = client.get(url, headers=keys["read-only"]).json()
    assert [e["event"] for e in shown["events"]] == ["opened", "assessed", "decided",
                                                     "closed"]
    assert _audited(any_engine, ref) == ["incident.open", "incident.assess",
                                         "incident.decide", "incident.close"]


def test_a_link_corrected_over_http_moves_the_radius_and_rotation_retires_the_ids(
        any_engine: Engine) -> None:
    from sealbill.app import ids

    client, org_id, keys = _client(any_engine)
    ref = _open(client, keys["admin"]).json()["id"]
    url = f"/v1/incidents/{ref}"
    with any_engine.begin() as conn:
        contact = ids.encode(conn, org_id, "contact", int(conn.execute(sa.text(
            "SELECT id FROM contacts WHERE email = 'books@accountant.test'")).scalar_one()))
    body = {"contact": contact, "account": "ACC-4", "entitled": False,
            "reason": "the mandate had ended", "valid_from": at(-1).isoformat(),
            "valid_to": at(30).isoformat()}
    backwards = client.post(f"{url}/correct-link", headers=keys["billing"],
                            json={**body, "valid_from": at(30).isoformat(),
                                  "valid_to": at(-1).isoformat()})
    unknown = client.post(f"{url}/correct-link", headers=keys["billing"],
                          json={**body, "account": "acc_" + "a" * 26})
    refused = [client.post(f"{url}/correct-link", headers=keys["read-only"], json=body),
               client.post(f"{url}/rotate", headers=keys["read-only"])]
    before = client.get(url, headers=keys["read-only"]).json()["radius"]
    corrected = client.post(f"{url}/correct-link", headers=keys["billing"], json=body)
    rotated = client.post(f"{url}/rotate", headers=keys["billing"])

    assert backwards.status_code == 422
    assert [e["field"] for e in backwards.json()["errors"]] == ["valid_to"]
    assert unknown.status_code == 404
    assert [r.status_code for r in refused] == [403, 403]
    assert "ACC-4" not in {s["reference"] for s in before["subjects"]}
    assert corrected.status_code == 200, corrected.text
    assert "ACC-4" in {s["reference"] for s in corrected.json()["radius"]["subjects"]}
    assert rotated.status_code == 200, rotated.text
    moved = {a["reference"]: a for a in rotated.json()["accounts"]}
    assert "ACC-4" in moved and rotated.json()["tokens_revoked"] >= 0
    new, old = moved["ACC-4"]["account_id"], moved["ACC-4"]["retired_public_id"]
    assert new.startswith("acc_") and new != old
    assert client.get(f"/v1/accounts/{old}", headers=keys["read-only"]).status_code == 410
    assert client.get(f"/v1/accounts/{new}", headers=keys["read-only"]).status_code == 200
    assert _audited(any_engine, ref) == ["incident.open", "incident.correct_link",
                                         "incident.rotate"]
