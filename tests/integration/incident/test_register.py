"""The Art. 33(5) register and the status of an incident, on both databases."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy.engine import Engine

from sealbill.incident.summary import register_csv, register_entry, status_dict
from sealbill.pipeline.incident import actions as pipeline
from tests.integration.incident.world import at, swapped_world


def test_the_register_lists_every_incident_notified_or_not_with_its_reasoning(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    leak = pipeline.open_incident(any_engine, world.org_id, title="swap", aware_at=at(60),
                                  scope=pipeline.Scope(), actor="dpo")
    alarm = pipeline.open_incident(any_engine, world.org_id, title="false alarm",
                                   aware_at=at(60),
                                   scope=pipeline.Scope(window=(at(8), at(12))), actor="dpo")
    pipeline.decide(any_engine, world.org_id, leak, notify=True, reason="invoices disclosed",
                    communication="planned", actor="dpo")
    pipeline.update(any_engine, world.org_id, leak, pipeline.FactsUpdate(
        notified_at=at(600), measures_taken=("migration reverted",)), actor="dpo")
    pipeline.decide(any_engine, world.org_id, alarm, notify=False,
                    reason="every recipient was entitled", communication="not_required",
                    communication_reason="no disclosure", actor="dpo")

    pipeline.close(any_engine, world.org_id, alarm, reason="no disclosure", actor="dpo")

    entries = [register_entry(d) for d in pipeline.all_dossiers(any_engine, world.org_id)]

    assert [(e["id"], e["status"], e["decision"]["notify"]) for e in entries] == [
        (leak, "notified", True), (alarm, "closed", False)]
    assert entries[0]["effects"]["subjects"] == 2
    assert entries[0]["effects"]["personal_data_breach"] is True
    assert "migration reverted" in entries[0]["remedial_action"]["taken"]
    assert entries[1]["effects"]["personal_data_breach"] is False
    assert entries[1]["decision"]["reason"] == "every recipient was entitled"
    rows = list(csv.DictReader(io.StringIO(register_csv(entries))))
    assert [(r["id"], r["notify"], r["subjects"]) for r in rows] == [
        (str(leak), "yes", "2"), (str(alarm), "no", "0")]


def test_status_counts_down_then_asks_for_the_reasons_for_delay(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = pipeline.open_incident(any_engine, world.org_id, title="swap",
                                         aware_at=at(60), scope=pipeline.Scope(), actor="dpo")

    early = status_dict(pipeline.dossier(any_engine, world.org_id, incident_id,
                                         now=at(60) + timedelta(hours=10, minutes=30)))
    late = status_dict(pipeline.dossier(any_engine, world.org_id, incident_id,
                                        now=at(60) + timedelta(hours=73)))

    assert early["clock"]["remaining"] == "2 d 13 h 30 min"
    assert not any("deadline has passed" in p for p in early["prompts"])
    assert early["ledger"]["ok"]
    assert late["clock"]["overdue"] and late["clock"]["remaining"] == "-1 h 00 min"
    assert any(f"incident update {incident_id} --delay-reason" in p for p in late["prompts"])
    assert "delay_reason" in [m["field"] for m in late["missing"]]
    assert {"cause", "detection", "severity", "communication"} <= {
        m["field"] for m in early["missing"]}


def test_without_a_disclosure_status_indicates_no_notification_but_asks_for_a_decision(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = pipeline.open_incident(any_engine, world.org_id, title="alarm",
                                         aware_at=at(60),
                                         scope=pipeline.Scope(window=(at(8), at(12))),
                                         actor="dpo")

    status = status_dict(pipeline.dossier(any_engine, world.org_id, incident_id))

    assert status["notification_indicated"] is False and status["missing"] == []
    assert any("--no-notify" in prompt for prompt in status["prompts"])
    assert status["radius"]["subjects"] == 0
