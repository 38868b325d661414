"""ENISA severity, the 72-hour clock and the completeness of a notification, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from sealbill.domain.breach_clock import read_clock
from sealbill.domain.breach_notice import FIELD_LABELS, NoticeFacts, missing_fields
from sealbill.domain.severity import Level, SeverityInputs, adjust, propose, recommend

INVOICE = ["account_reference", "admin_email", "amount", "name", "payment_method",
           "postal_address"]
T0 = datetime(2026, 5, 15, 7, 10, tzinfo=UTC)


def test_an_invoice_leak_to_known_recipients_is_high_by_default() -> None:
    proposal = propose(INVOICE, has_leak=True)

    assert (proposal.inputs.dpc, proposal.inputs.ei, proposal.inputs.cb) == (
        3, Decimal("1"), Decimal("0.25"))
    assert proposal.inputs.level is Level.HIGH
    assert set(proposal.rationale) == {"dpc", "ei", "cb_confidentiality", "cb_integrity",
                                       "cb_availability", "cb_malicious"}


def test_unknown_recipients_and_contact_data_only_move_the_proposal() -> None:
    assert propose(INVOICE, has_leak=True, recipients_known=False).inputs.cb == Decimal("0.5")
    contact_only = propose(["admin_email"], has_leak=True).inputs
    assert (contact_only.dpc, contact_only.ei, contact_only.level) == (
        1, Decimal("0.75"), Level.LOW)
    assert propose(INVOICE, has_leak=False).inputs.cb == 0


@pytest.mark.parametrize(("score", "level"), [
    ("1.99", Level.LOW), ("2", Level.MEDIUM), ("2.99", Level.MEDIUM), ("3", Level.HIGH),
    ("3.75", Level.HIGH), ("4", Level.VERY_HIGH), ("6", Level.VERY_HIGH)])
def test_enisa_thresholds_give_a_score_on_a_boundary_the_higher_level(score: str,
                                                                       level: Level) -> None:
    from sealbill.domain.severity import level_for

    assert level_for(Decimal(score)) is level


def test_a_justified_change_is_recorded_beside_the_proposal() -> None:
    proposal = propose(INVOICE, has_leak=True)

    assessment = adjust(proposal, {"cb_malicious": Decimal("0.5"), "dpc": 3},
                        {"cb_malicious": "a former employee forwarded them"})

    assert assessment.score == Decimal("3.75")
    data = assessment.to_dict()
    assert data["adjustments"] == {"cb_malicious": {
        "from": "0", "to": "0.5", "justification": "a former employee forwarded them"}}
    assert data["proposed"]["cb_malicious"] == "0" and data["level"] == "high"


def test_values_outside_the_method_and_unknown_inputs_are_refused() -> None:
    proposal = propose(INVOICE, has_leak=True)

    with pytest.raises(ValueError, match="ei must be one of"):
        adjust(proposal, {"ei": Decimal("0.6")}, {"ei": "guess"})
    with pytest.raises(ValueError, match="unknown severity inputs: speed"):
        adjust(proposal, {"speed": 1}, {"speed": "x"})
    with pytest.raises(ValueError, match="dpc must be one of"):
        replace(proposal.inputs, dpc=5)
    with pytest.raises(ValueError):
        SeverityInputs(3, Decimal("1"), Decimal("0.3"), Decimal(0), Decimal(0), Decimal(0))


def test_the_recommendation_follows_the_leak_and_the_level() -> None:
    assert not recommend(False, Level.VERY_HIGH).notify_authority
    low = recommend(True, Level.LOW)
    assert low.notify_authority and not low.communicate_subjects
    assert recommend(True, Level.VERY_HIGH).communicate_subjects


def test_the_deadline_is_72_hours_after_awareness_whatever_the_offset() -> None:
    paris = timezone(timedelta(hours=2))
    aware = datetime(2026, 5, 15, 9, 10, tzinfo=paris)

    reading = read_clock(aware, T0 + timedelta(hours=71, minutes=59))

    assert reading.deadline == T0 + timedelta(hours=72)
    assert reading.remaining == timedelta(minutes=1) and not reading.overdue


def test_a_late_notification_needs_a_reason_until_one_is_given() -> None:
    on_time = read_clock(T0, T0 + timedelta(days=9), notified_at=T0 + timedelta(hours=70))
    late = read_clock(T0, T0 + timedelta(days=9), notified_at=T0 + timedelta(hours=73))
    explained = read_clock(T0, T0 + timedelta(days=9), notified_at=T0 + timedelta(hours=73),
                           delay_reason="scope unknown until the ledger was replayed")

    assert not on_time.late and not on_time.needs_delay_reason and not on_time.overdue
    assert late.late and late.needs_delay_reason
    assert explained.late and not explained.needs_delay_reason


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        read_clock(datetime(2026, 5, 15, 9, 10), T0)
    with pytest.raises(ValueError, match="time zone"):
        read_clock(T0, T0, notified_at=datetime(2026, 5, 16))


def complete_facts(**changes: object) -> NoticeFacts:
    facts = NoticeFacts(
        aware_at=T0, late=False, notification_type="initial", controller_name="Acme",
        controller_contact="billing@acme.test", dpo_name="Dana", dpo_email="dpo@acme.test",
        breach_start=T0, breach_end=T0, detection="customer report", nature=["confidentiality"],
        cause="migration", description="invoices to others", subject_categories=["customers"],
        subject_count=2, record_count=2, data_categories=["amount"], countries=["FR"],
        member_states=["FR"], consequences=["phishing"], severity={"level": "high"},
        measures_taken=["sending halted"], communication="planned")
    return replace(facts, **changes)  # type: ignore[arg-type]


def test_a_complete_notification_misses_nothing_and_each_gap_is_named() -> None:
    assert missing_fields(complete_facts()) == ()
    gaps = {"notification_type": {"notification_type": "draft"},
            "delay_reason": {"late": True},
            "dpo": {"dpo_email": "  "},
            "breach_period": {"breach_end": None},
            "nature": {"nature": ["secrecy"]},
            "member_states": {"countries": []},
            "measures": {"measures_taken": []},
            "communication": {"communication": "exempt", "communication_exemption": "a"}}
    for key, change in gaps.items():
        assert missing_fields(complete_facts(**change)) == (key,), key
    assert set(gaps) <= set(FIELD_LABELS)


def test_an_exemption_names_its_point_and_its_reason() -> None:
    exempt = complete_facts(communication="exempt", communication_exemption="b",
                            communication_reason="ids rotated, links revoked before any use")
    assert missing_fields(exempt) == ()
    assert missing_fields(replace(exempt, communication_exemption="d")) == ("communication",)


def test_zero_subjects_is_a_fact_not_a_gap() -> None:
    none = complete_facts(subject_count=0, record_count=0, subject_categories=[],
                          data_categories=[], countries=[], member_states=[])

    assert missing_fields(none) == ()
