"""A metric's declared range and precision: accepted by ``POST /v1/metrics`` and
``/v1/catalog/apply``, enforced on ``POST /v1/usage`` and ``POST /v1/usage/batch`` with the
record and the field named, nothing written."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.store.schema import usage_events
from tests.integration.api.world import build_org

_SEATS = {"code": "seats", "name": "Seats", "aggregation": "max", "min_value": "1",
          "max_value": "500", "decimal_places": 0}


def _count(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar())


def _event(event_id: str, value: object) -> dict[str, object]:
    return {"event_id": event_id, "account_reference": "C001", "metric_code": "seats",
            "timestamp": "2026-10-03T00:00:00Z", "value": value}


def test_a_metric_keeps_its_declared_range_and_precision(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    headers = {"Authorization": f"Bearer {org.keys['admin']}"}
    created = client.post("/v1/metrics", json=_SEATS, headers=headers)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("min_value", "max_value", "decimal_places")} == {
        "min_value": "1", "max_value": "500", "decimal_places": 0}
    inverted = client.post("/v1/metrics", json={**_SEATS, "code": "disk", "min_value": "9",
                                                "max_value": "2"}, headers=headers)
    assert inverted.status_code == 422 and "above max_value" in inverted.text


def test_usage_outside_a_metrics_range_is_refused_naming_record_and_field(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    admin = {"Authorization": f"Bearer {org.keys['admin']}"}
    billing = {"Authorization": f"Bearer {org.keys['billing']}"}
    assert client.post("/v1/metrics", json=_SEATS, headers=admin).status_code == 201
    before = _count(sqlite_engine)
    batch = [_event("s-0", "3"), _event("s-1", "2.5"), _event("s-2", 501), _event("s-3", "0")]
    refused = client.post("/v1/usage/batch", json=batch, headers=billing)
    assert refused.status_code == 422
    errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
    assert set(errors) == {"[1]", "[2]", "[3]"}
    assert "value" in errors["[1]"] and "integer" in errors["[1]"]
    assert "maximum 500" in errors["[2]"] and "minimum 1" in errors["[3]"]
    account = client.get("/v1/accounts", headers=billing).json()["items"][0]["id"]
    one = client.post("/v1/usage", json={"event_id": "r-1", "account": account,
                                         "metric": "seats", "timestamp": "2026-10-03T00:00:00Z",
                                         "value": "1.5"}, headers=billing)
    assert one.status_code == 422 and "integer" in one.text and "value" in one.text
    assert _count(sqlite_engine) == before
    accepted = client.post("/v1/usage/batch", json=[_event("s-9", "500")], headers=billing)
    assert accepted.status_code == 200 and accepted.json()["inserted"] == 1


def test_catalog_apply_sets_and_changes_a_metrics_limits(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    headers = {"Authorization": f"Bearer {org.keys['admin']}"}
    yaml = ("metrics:\n  - code: disk\n    name: Disk\n    aggregation: max\n"
            "    max_value: '{max}'\n    decimal_places: 2\n")
    first = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=100)},
                        headers=headers)
    assert first.status_code == 200, first.text
    again = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=100)},
                        headers=headers)
    assert [c["action"] for c in again.json()["changes"]] == ["unchanged"]
    changed = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=200)},
                          headers=headers)
    change = changed.json()["changes"][0]
    assert change["action"] == "change" and "max_value '100' -> '200'" in change["detail"]
    disk = next(m for m in client.get("/v1/metrics", headers=headers).json()
                if m["code"] == "disk")
    assert disk["max_value"] == "200" and disk["decimal_places"] == 2


def test_metrics_create_on_the_command_line_takes_the_limits(sqlite_engine: Engine) -> None:
    import json

    from typer.testing import CliRunner

    from sealbill.cli import app as cli

    build_org(sqlite_engine, "alpha", 1)
    done = CliRunner().invoke(cli, [
        "metrics", "create", "disk", "--org", "alpha", "--name", "Disk", "--aggregation", "max",
        "--min", "0", "--max", "10.5", "--decimal-places", "1", "--json",
        "--db", sqlite_engine.url.render_as_string(hide_password=False)])
    assert done.exit_code == 0, done.output
    created = json.loads(done.output)
    assert (created["min_value"], created["max_value"], created["decimal_places"],
            created["allows_negative"]) == ("0", "10.5", 1, False)


def test_narrowing_a_metrics_range_reports_the_stored_usage_left_outside(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    """``apply --dry-run`` with a narrower range says how many stored events fall outside;
    they stay stored, ``check data`` lists them, and voiding one lowers the count."""
    import json

    from typer.testing import CliRunner

    from sealbill.cli import app as cli

    org = build_org(sqlite_engine, "alpha", 1)
    client = TestClient(create_app(sqlite_engine))
    admin = {"Authorization": f"Bearer {org.keys['admin']}"}
    billing = {"Authorization": f"Bearer {org.keys['billing']}"}
    yaml = ("metrics:\n  - code: seats\n    name: Seats\n    aggregation: max\n"
            "    min_value: '1'\n    max_value: '{max}'\n    decimal_places: 0\n")
    assert client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=500)},
                       headers=admin).status_code == 200
    stored = client.post("/v1/usage/batch", json=[_event("s-1", "3"), _event("s-2", "450"),
                                                   _event("s-3", "480")], headers=billing)
    assert stored.status_code == 200 and stored.json()["inserted"] == 3
    before = _count(sqlite_engine)

    dry = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=400),
                                                 "dry_run": True}, headers=admin)
    change = dry.json()["changes"][0]
    assert dry.status_code == 200 and change["stored_outside"] == 2, dry.text
    assert "2 stored usage event(s) outside the new limits" in change["detail"]
    assert "check data" in change["detail"]
    seats = next(m for m in client.get("/v1/metrics", headers=admin).json()
                 if m["code"] == "seats")
    assert seats["max_value"] == "500"  # the dry run wrote nothing

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.format(max=400))
    db = sqlite_engine.url.render_as_string(hide_password=False)
    printed = CliRunner().invoke(cli, ["apply", "-f", str(catalog), "--org", "alpha",
                                       "--dry-run", "--db", db])
    assert printed.exit_code == 0, printed.output
    assert "2 stored usage event(s) outside the new limits" in " ".join(printed.output.split())

    applied = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=400)},
                          headers=admin)
    assert applied.status_code == 200 and applied.json()["changes"][0]["stored_outside"] == 2
    assert _count(sqlite_engine) == before  # the events stay
    checked = CliRunner().invoke(cli, ["check", "data", "--org", "alpha", "--json",
                                       "--db", db])
    findings = json.loads(checked.output)["findings"]
    assert sorted(f["record"] for f in findings if f["field"] == "value") == ["'s-2'", "'s-3'"]

    usage = client.get("/v1/usage", headers=billing).json()["items"]
    s2 = next(u["id"] for u in usage if u["event_id"] == "s-2")
    voided = client.post(f"/v1/usage/{s2}/void", json={"reason": "counter glitch"},
                         headers=billing)
    assert voided.status_code == 200, voided.text
    again = client.post("/v1/catalog/apply", json={"catalog": yaml.format(max=300),
                                                   "dry_run": True}, headers=admin)
    assert again.json()["changes"][0]["stored_outside"] == 1  # s-3; s-2 is voided
