"""``ETag`` / ``If-Match`` on the update routes: a stale ETag is a 412 and nothing is written
(checked in the change's own transaction); the current one lets the change through and the
answer carries the new ETag."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from tests.integration.api.world import Org, build_org


@pytest.fixture
def served(sqlite_engine: Engine) -> Iterator[tuple[TestClient, Org, dict[str, str]]]:
    org = build_org(sqlite_engine, "alpha", 1)
    with TestClient(create_app(sqlite_engine, rate=10_000, burst=10_000)) as client:
        yield client, org, {"Authorization": f"Bearer {org.keys['admin']}"}


def test_a_subscription_changed_since_it_was_read_is_a_412_and_stays_as_it_is(
        served: tuple[TestClient, Org, dict[str, str]]) -> None:
    client, org, headers = served
    path = f"/v1/subscriptions/{org.ids['subscription_id']}"
    read = client.get(path, headers=headers)
    tag = read.headers["etag"]
    moved = client.post(f"{path}/change-plan", headers={**headers, "If-Match": tag},
                        json={"plan": "pro", "on": "2026-11-16"})
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] != tag == read.headers["etag"]
    assert client.get(path, headers=headers).headers["etag"] == moved.headers["etag"]

    stale = client.post(f"{path}/cancel", headers={**headers, "If-Match": tag},
                        json={"at_period_end": True})
    assert stale.status_code == 412, stale.text
    assert client.get(path, headers=headers).json()["ends_on"] is None  # nothing written
    cancelled = client.post(f"{path}/cancel", json={"at_period_end": True}, headers={
        **headers, "If-Match": moved.headers["etag"]})
    assert cancelled.status_code == 200 and cancelled.json()["ends_on"] is not None


def test_an_account_changed_since_it_was_read_is_a_412(
        served: tuple[TestClient, Org, dict[str, str]]) -> None:
    client, org, headers = served
    path = f"/v1/accounts/{org.ids['account_id']}"
    tag = client.get(path, headers=headers).headers["etag"]
    assert client.patch(path, headers={**headers, "If-Match": tag},
                        json={"city": "Nice"}).status_code == 200
    stale = client.patch(path, headers={**headers, "If-Match": tag}, json={"city": "Lille"})
    assert stale.status_code == 412
    assert client.get(path, headers=headers).json()["city"] == "Nice"


def test_a_contact_changed_since_it_was_read_is_a_412_and_keeps_its_links(
        served: tuple[TestClient, Org, dict[str, str]]) -> None:
    client, org, headers = served
    path = f"/v1/contacts/{org.ids['contact_id']}"
    tag = client.get(path, headers=headers).headers["etag"]
    moved = client.post(f"{path}/change-address", headers={**headers, "If-Match": tag},
                        json={"email": "ap-new@alpha-billing.fr"})
    assert moved.status_code == 200, moved.text
    stale = client.post(f"{path}/unlink", headers={**headers, "If-Match": tag},
                        json={"account": org.ids["account_id"]})
    assert stale.status_code == 412
    links = client.get(path, headers=headers).json()["links"]
    assert [link["status"] for link in links] == ["pending"]  # not revoked
    fresh = client.get(path, headers=headers).headers["etag"]
    assert client.post(f"{path}/unlink", headers={**headers, "If-Match": fresh},
                       json={"account": org.ids["account_id"]}).status_code == 200
