"""``POST /v1/bounces`` and ``POST /v1/contacts/{id}/clear-bounce``: the DSN import and the
clearing of a bounce through the API, with its conventions (roles, ``Idempotency-Key``,
RFC 9457 problems), against a run really sent through the test SMTP server."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from sealbill.api.app import create_app
from sealbill.app import operators
from sealbill.app.context import local_actor
from sealbill.store.schema import audit_log, contacts
from tests.integration.delivery.conftest import World
from tests.integration.delivery.test_dsn_bounces import _bounced, _dsn, _sent

ADDRESS = "billing1@client1.example"


def _client(world: World) -> tuple[TestClient, dict[str, str]]:
    keys = {}
    for role in ("billing", "read-only"):
        email = f"{role}@ops.example"
        operators.create_operator(world.engine, local_actor(), email, role,
                                  "correct horse battery")
        keys[role] = operators.create_key(world.engine, local_actor(), world.org_id, email,
                                          role)["key"]
    return TestClient(create_app(world.engine, rate=10_000, burst=10_000)), keys


def _auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _contact_id(client: TestClient, key: str, email: str) -> str:
    accounts = client.get("/v1/accounts?limit=100", headers=_auth(key)).json()["items"]
    for account in accounts:
        for contact in client.get(f"/v1/accounts/{account['id']}/contacts",
                                  headers=_auth(key)).json():
            if contact["email"] == email:
                return str(contact["id"])
    raise AssertionError(email)


def _audits(world: World, action: str) -> list[Any]:
    with world.engine.begin() as conn:
        return list(conn.execute(sa.select(audit_log.c.api_key_prefix).where(
            audit_log.c.action == action)).scalars())


def test_a_dsn_posted_as_message_rfc822_flags_the_contact_and_a_replay_changes_nothing(
        world: World) -> None:
    sent = _sent(world)
    client, keys = _client(world)
    mail = _dsn("postfix_5xx_user_unknown.eml", sent["A0001"], ADDRESS)
    headers = _auth(keys["billing"], **{"Content-Type": "message/rfc822",
                                        "Idempotency-Key": "dsn-1"})
    first = client.post("/v1/bounces", content=mail, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["bounced"] == 1 and first.json()["results"][0]["recipient"] == ADDRESS
    assert _bounced(world) == [ADDRESS]
    replay = client.post("/v1/bounces", content=mail, headers=headers)
    assert replay.json() == first.json()  # the stored answer, the import not run again
    assert _audits(world, "bounces.import") == [keys["billing"][:16]]

    read_only = client.post("/v1/bounces", content=mail, headers=_auth(
        keys["read-only"], **{"Content-Type": "message/rfc822"}))
    assert read_only.status_code == 403
    assert read_only.headers["content-type"].startswith("application/problem+json")


def test_dsns_posted_as_json_are_read_each_and_a_bad_body_is_a_problem(world: World) -> None:
    sent = _sent(world)
    client, keys = _client(world)
    bounce = _dsn("postfix_5xx_user_unknown.eml", sent["A0002"], "billing2@client2.example")
    delayed = _dsn("postfix_4xx_delayed.eml", sent["A0001"], ADDRESS)
    done = client.post("/v1/bounces", json={"messages": [bounce.decode(), delayed.decode()]},
                       headers=_auth(keys["billing"]))
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["mails"], body["bounced"], body["delayed_recorded"]) == (2, 1, 1)
    assert [r["source"] for r in body["results"]] == ["messages[0]", "messages[1]"]
    assert _bounced(world) == ["billing2@client2.example"]

    for content, ctype, field in [(b"{}", "application/json", "messages"),
                                  (b"hello", "text/plain", "Content-Type"),
                                  (b"", "message/rfc822", "body")]:
        refused = client.post("/v1/bounces", content=content, headers=_auth(
            keys["billing"], **{"Content-Type": ctype}))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert field in refused.text
    assert _bounced(world) == ["billing2@client2.example"]


def test_clearing_a_bounce_through_the_api_takes_a_reason_and_is_409_when_not_flagged(
        world: World) -> None:
    sent = _sent(world)
    client, keys = _client(world)
    client.post("/v1/bounces", content=_dsn("postfix_5xx_user_unknown.eml", sent["A0001"],
                                            ADDRESS),
                headers=_auth(keys["billing"], **{"Content-Type": "message/rfc822"}))
    contact = _contact_id(client, keys["billing"], ADDRESS)
    no_reason = client.post(f"/v1/contacts/{contact}/clear-bounce", json={},
                            headers=_auth(keys["billing"]))
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    cleared = client.post(f"/v1/contacts/{contact}/clear-bounce",
                          json={"reason": "mailbox recreated, checked by phone"},
                          headers=_auth(keys["billing"]))
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["id"] == contact
    with world.engine.begin() as conn:
        assert conn.execute(sa.select(contacts.c.bounced_at).where(
            contacts.c.email == ADDRESS)).scalar() is None
    assert _audits(world, "contact.clear_bounce") == [keys["billing"][:16]]
    again = client.post(f"/v1/contacts/{contact}/clear-bounce",
                        json={"reason": "once more"}, headers=_auth(keys["billing"]))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
