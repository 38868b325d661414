"""``POST /v1/usage/batch``: idempotent per event, all or nothing, problems by index."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.store.schema import usage_events
from tests.integration.api.world import build_org


def _events(n: int, start: int = 0, value: str = "3") -> list[dict[str, str]]:
    return [{"event_id": f"b-{i}", "account_reference": "C001", "metric_code": "api_calls",
             "timestamp": "2026-10-03T00:00:00Z", "value": value}
            for i in range(start, start + n)]


def _count(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar())


def test_a_batch_is_stored_once_and_a_replay_only_counts_duplicates(any_engine: Engine
                                                                    ) -> None:
    org = build_org(any_engine, "alpha", 1)
    client = TestClient(create_app(any_engine))
    headers = {"Authorization": f"Bearer {org.keys['billing']}"}
    before = _count(any_engine)
    first = client.post("/v1/usage/batch", json=_events(1000), headers=headers)
    assert first.status_code == 200 and first.json() == {
        "received": 1000, "inserted": 1000, "duplicates": 0}
    again = client.post("/v1/usage/batch", json=_events(1500), headers=headers)
    assert again.json() == {"received": 1500, "inserted": 500, "duplicates": 1000}
    assert _count(any_engine) == before + 1500


def test_a_bad_event_or_a_conflict_refuses_the_whole_batch_naming_it(sqlite_engine: Engine
                                                                     ) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    headers = {"Authorization": f"Bearer {org.keys['billing']}"}
    client.post("/v1/usage/batch", json=_events(3), headers=headers)
    before = _count(sqlite_engine)
    events = _events(5, start=10)
    events[2]["timestamp"] = "2026-10-03T00:00:00"  # no offset
    events[4]["account_reference"] = "NOPE"
    refused = client.post("/v1/usage/batch", json=events, headers=headers)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["[2]", "[4]"]
    conflict = client.post("/v1/usage/batch", json=_events(2, value="4") + _events(
        2, start=20), headers=headers)
    assert conflict.status_code == 409
    assert [e["field"] for e in conflict.json()["errors"]] == ["[0].event_id", "[1].event_id"]
    too_many = client.post("/v1/usage/batch", content=json.dumps(_events(10_001)),
                           headers={**headers, "content-type": "application/json"})
    assert too_many.status_code == 422
    assert _count(sqlite_engine) == before


def test_a_batch_obeys_the_metrics_rules_as_the_file_import_does(sqlite_engine: Engine
                                                                 ) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    headers = {"Authorization": f"Bearer {org.keys['billing']}"}
    before = _count(sqlite_engine)
    events = _events(3, start=30)
    del events[1]["value"]  # api_calls is a sum: it needs a value
    events[2]["value"] = "-2"  # and does not allow negative ones
    refused = client.post("/v1/usage/batch", json=events, headers=headers)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["[1]", "[2]"]
    assert "value" in refused.json()["errors"][0]["message"]
    assert _count(sqlite_engine) == before


def test_a_batch_naming_an_archived_account_is_refused_like_a_single_event(
        any_engine: Engine) -> None:
    org = build_org(any_engine, "alpha", 1)
    client = TestClient(create_app(any_engine))
    headers = {"Authorization": f"Bearer {org.keys['billing']}"}
    assert client.post(f"/v1/accounts/{org.ids['account_id']}/archive",
                       headers=headers).status_code == 200
    before = _count(any_engine)
    refused = client.post("/v1/usage/batch", json=_events(2, start=40), headers=headers)
    assert refused.status_code == 409
    assert [e["field"] for e in refused.json()["errors"]] == [
        "[0].account_reference", "[1].account_reference"]
    assert _count(any_engine) == before
