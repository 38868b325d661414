"""Incident tooling on SQLite and PostgreSQL, from ledger rows and real contact history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.blast_radius import Reason
from sealbill.pipeline.incident import actions as pipeline
from sealbill.store.incident import incidents as store
from sealbill.store.parties import records as parties
from sealbill.store.schema import incident_events
from tests.integration.incident.world import at, swapped_world


def open_for(engine: Engine, org_id: int, **scope: Any) -> int:
    return pipeline.open_incident(engine, org_id, title="customers got other invoices",
                                  aware_at=at(24 * 60), scope=pipeline.Scope(**scope),
                                  actor="tester")


def test_radius_finds_the_swapped_recipients_from_ledger_and_history(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id)

    radius = pipeline.radius(any_engine, world.org_id, incident_id)

    view = radius.effective
    assert radius.messages_in_scope == 4
    assert [(e.account_reference, e.email) for e in view.exposures] == [
        ("ACC-1", "bob@two.test"), ("ACC-2", "ann@one.test")]
    assert {e.reason for e in view.exposures} == {Reason.NEVER_LINKED}
    assert [i.subject.reference for i in view.subjects] == ["ACC-1", "ACC-2"]
    assert view.member_states == ("DE", "FR")
    assert (view.first_sent_at, view.last_sent_at) == (at(0), at(7))
    # The accountant, verified on ACC-3 and ACC-4, is not a leak.
    assert "books@accountant.test" not in {r.email for r in view.recipients}


def test_a_migration_recorded_as_verified_is_a_leak_only_once_the_operator_corrects_it(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    world.migrate_links_through_events({"ACC-3": "ann@one.test"}, at(20))
    world.sent("ACC-3", ["ann@one.test"], at(30))
    incident_id = open_for(any_engine, world.org_id, window=(at(25), at(60)))

    before = pipeline.radius(any_engine, world.org_id, incident_id)
    pipeline.correct_link(any_engine, world.org_id, incident_id, contact="ann@one.test",
                          account="ACC-3", entitled=False, reason="migration 0042 swapped it",
                          actor="tester", valid_from=at(20))
    after = pipeline.radius(any_engine, world.org_id, incident_id)

    assert before.messages_in_scope == 1 and not before.effective.has_leak
    assert not after.as_recorded.has_leak
    assert [(e.account_reference, e.email, e.reason) for e in after.effective.exposures] == [
        ("ACC-3", "ann@one.test", Reason.CORRECTED_NOT_ENTITLED)]
    with any_engine.connect() as conn:
        timeline = [e["event"] for e in store.events(conn, world.org_id, incident_id)]
    assert timeline == ["opened", "link_corrected"]


def test_an_incident_with_no_unintended_recipient_says_so(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id, window=(at(8), at(12)))

    d = pipeline.dossier(any_engine, world.org_id, incident_id)

    assert d.radius.messages_in_scope == 2
    assert not d.view.has_leak
    assert d.view.subject_count == 0 and d.view.recipients == ()


def test_scope_criteria_combine_run_window_and_message_ids(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    other_run = world.sent("ACC-1", ["bob@two.test"], at(5), run_id=2)
    by_run = open_for(any_engine, world.org_id, run_id=2)
    by_ids = open_for(any_engine, world.org_id, message_ids=(other_run,), run_id=1)

    assert pipeline.radius(any_engine, world.org_id, by_run).messages_in_scope == 1
    assert pipeline.radius(any_engine, world.org_id, by_ids).messages_in_scope == 0


def test_another_organizations_incident_and_ledger_are_invisible(any_engine: Engine) -> None:
    acme = swapped_world(any_engine, "acme")
    other = swapped_world(any_engine, "other")
    incident_id = open_for(any_engine, acme.org_id)

    with pytest.raises(parties.NotFound):
        pipeline.radius(any_engine, other.org_id, incident_id)
    radius = pipeline.radius(any_engine, acme.org_id, incident_id)
    assert radius.messages_in_scope == 4
    assert {e.account_id for e in radius.effective.exposures} <= set(acme.accounts.values())


def test_the_clock_asks_for_reasons_once_the_deadline_has_passed(any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id)
    aware = at(24 * 60)

    early = pipeline.dossier(any_engine, world.org_id, incident_id, now=aware + timedelta(hours=2))
    late = pipeline.dossier(any_engine, world.org_id, incident_id, now=aware + timedelta(hours=80))
    pipeline.update(any_engine, world.org_id, incident_id,
                    pipeline.FactsUpdate(delay_reason="scope of the run unknown until day 4"),
                    actor="tester")
    explained = pipeline.dossier(any_engine, world.org_id, incident_id,
                                 now=aware + timedelta(hours=80))

    assert early.clock.remaining == timedelta(hours=70)
    assert "delay_reason" not in early.missing and not early.clock.overdue
    assert late.clock.overdue and late.clock.needs_delay_reason
    assert "delay_reason" in late.missing
    assert not explained.clock.needs_delay_reason and "delay_reason" not in explained.missing


def test_assessment_proposes_financial_context_and_records_justified_changes(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id)

    with pytest.raises(ValueError, match="needs a justification"):
        pipeline.assess(any_engine, world.org_id, incident_id,
                        changes={"cb_confidentiality": Decimal("0.5")}, justifications={},
                        actor="tester")
    assessment = pipeline.assess(
        any_engine, world.org_id, incident_id, changes={"cb_confidentiality": Decimal("0.5")},
        justifications={"cb_confidentiality": "recipient lists were visible"}, actor="tester")

    assert assessment.proposal.inputs.dpc == 3
    assert (assessment.score, assessment.level.value) == (Decimal("3.5"), "high")
    with any_engine.connect() as conn:
        record = store.incident(conn, world.org_id, incident_id)["record"]
        events = [e["event"] for e in store.events(conn, world.org_id, incident_id)]
    assert record["severity"]["adjustments"]["cb_confidentiality"]["justification"] == (
        "recipient lists were visible")
    assert events == ["opened", "assessed"]  # the refused attempt left no trace


def test_a_decision_is_recorded_with_its_reasoning_and_the_recommendation(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id)
    pipeline.assess(any_engine, world.org_id, incident_id, changes={}, justifications={},
                    actor="tester")

    with pytest.raises(ValueError, match="reasoning"):
        pipeline.decide(any_engine, world.org_id, incident_id, notify=True, reason=" ",
                        communication="planned", actor="tester")
    with pytest.raises(ValueError, match=r"Art\. 34\(3\)"):
        pipeline.decide(any_engine, world.org_id, incident_id, notify=True, reason="risk",
                        communication="exempt", actor="tester")
    decision = pipeline.decide(any_engine, world.org_id, incident_id, notify=True,
                               reason="invoices with amounts reached other customers",
                               communication="planned", actor="tester")

    assert decision["recommended"]["notify_authority"] is True
    assert decision["recommended"]["communicate_subjects"] is True  # 3.25: high
    d = pipeline.dossier(any_engine, world.org_id, incident_id)
    assert d.record["decision"]["reason"] == "invoices with amounts reached other customers"
    assert "communication" not in d.missing and "severity" not in d.missing


def test_every_record_change_appends_its_event_in_the_same_transaction(
        any_engine: Engine) -> None:
    world = swapped_world(any_engine)
    incident_id = open_for(any_engine, world.org_id)
    pipeline.update(any_engine, world.org_id, incident_id, pipeline.FactsUpdate(
        facts={"cause": "bad migration"}, measures_taken=("migration reverted",),
        notified_at=at(30 * 60)), actor="tester")

    with any_engine.connect() as conn:
        row = store.incident(conn, world.org_id, incident_id)
        count = conn.execute(sa.select(sa.func.count()).select_from(incident_events).where(
            incident_events.c.incident_id == incident_id)).scalar()
    assert row["status"] == "notified"
    assert row["record"]["facts"]["cause"] == "bad migration"
    assert row["record"]["measures"]["taken"] == ["migration reverted"]
    assert count == 2
    assert row["aware_at"] == at(24 * 60)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        pipeline.parse_time("2026-05-14T13:35:00")
    assert pipeline.parse_time("2026-05-14T13:35:00+02:00") == datetime(
        2026, 5, 14, 11, 35, tzinfo=UTC)
