"""The status of one incident on its clock, and the Art. 33(5) register of all of them.

Invariants:
- both are read from :class:`Dossier` objects: the register's effects are the blast radius of
  the same ledger the drafts use;
- the register lists every incident, notified or not, closed or not, and for each one whether
  it was notified and why (the decision's reasoning), as Art. 33(5) requires;
- the notification's gaps are listed whenever a notification is indicated (a disclosure was
  found, or the operator decided to notify);
- past the deadline without a recorded reason for the delay, the status *asks* for it (a
  prompt naming the command), it never invents one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sealbill.domain.breach_clock import format_duration
from sealbill.domain.breach_notice import FIELD_LABELS
from sealbill.incident.facts import Dossier
from sealbill.incident.labels import hint
from sealbill.incident.radius_report import summary_sentence
from sealbill.outputs.csv_cells import csv_text


def status_dict(d: Dossier) -> dict[str, Any]:
    incident_id = d.incident["id"]
    clock, view = d.clock, d.view
    decision = d.record.get("decision")
    prompts = []
    indicated = view.has_leak or bool(decision and decision.get("notify"))
    if d.ledger_problems:
        prompts.append(f"The delivery ledger fails its integrity check ({len(d.ledger_problems)}"
                       " problem(s)): the blast radius may be incomplete; see "
                       "`sealbill incident radius` and the ledger verification")
    if clock.needs_delay_reason and indicated:
        prompts.append("The 72-hour deadline has passed: the notification must state the "
                       "reasons for the delay. Record them with: sealbill incident update "
                       f"{incident_id} --delay-reason TEXT")
    if decision is None and view.has_leak:
        prompts.append("No decision recorded yet: sealbill incident decide "
                       f"{incident_id} --notify|--no-notify --reason TEXT")
    elif decision is None:
        prompts.append("No unintended recipient in scope: record the decision for the register "
                       f"(sealbill incident decide {incident_id} --no-notify --reason TEXT), or "
                       "widen the scope if the reports point elsewhere")
    if d.record.get("severity") is None and view.has_leak:
        prompts.append(f"Severity not assessed yet: sealbill incident assess {incident_id}")
    return {
        "incident": {"id": incident_id, "title": d.incident["title"],
                     "status": d.incident["status"]},
        "clock": {
            "aware_at": d.incident["aware_at"].isoformat(),
            "deadline": clock.deadline.isoformat(),
            "remaining": format_duration(clock.remaining),
            "remaining_seconds": int(clock.remaining.total_seconds()),
            "overdue": clock.overdue,
            "notified_at": clock.notified_at.isoformat() if clock.notified_at else None,
            "late": clock.late,
            "needs_delay_reason": clock.needs_delay_reason,
        },
        "radius": {"summary": summary_sentence(view, d.radius.messages_in_scope),
                   "subjects": view.subject_count, "records": view.record_count,
                   "unintended_recipients": len(view.recipients)},
        "decision": decision,
        "notification_indicated": indicated,
        # Without a disclosure and without a decision to notify, there is no notification
        # whose gaps would matter; the register still documents the incident.
        "missing": [] if not indicated else [{"field": key, "label": FIELD_LABELS[key],
                     "hint": hint(key, incident_id)}
                    for key in d.missing],
        "ledger": {"ok": not d.ledger_problems, "problems": list(d.ledger_problems)},
        "prompts": prompts,
    }


def register_entry(d: Dossier) -> dict[str, Any]:
    """One incident as the Art. 33(5) register documents it: facts, effects, remedial action."""
    facts, view = d.facts, d.view
    decision = d.record.get("decision") or {}
    severity = d.record.get("severity") or {}
    taken, proposed = d.measures("en")
    return {
        "id": d.incident["id"],
        "title": d.incident["title"],
        "status": d.incident["status"],
        "opened_at": d.incident["opened_at"].isoformat(),
        "aware_at": d.incident["aware_at"].isoformat(),
        "facts": {
            "description": facts.description, "cause": facts.cause,
            "detection": facts.detection, "nature": list(facts.nature),
            "breach_start": facts.breach_start.isoformat() if facts.breach_start else None,
            "breach_end": facts.breach_end.isoformat() if facts.breach_end else None,
        },
        "effects": {
            "personal_data_breach": view.has_leak,
            "subjects": view.subject_count, "records": view.record_count,
            "disclosures": view.disclosure_count,
            "unintended_recipients": len(view.recipients),
            "data_categories": list(view.data_categories),
            "member_states": list(view.member_states),
            "consequences": d.consequences("en"),
        },
        "severity": {"score": severity.get("score"), "level": severity.get("level")},
        "decision": {"notify": decision.get("notify"), "reason": decision.get("reason"),
                     "by": decision.get("by"), "at": decision.get("at")},
        "notified_at": d.clock.notified_at.isoformat() if d.clock.notified_at else None,
        "delay_reason": facts.delay_reason,
        "communication": (decision.get("communication") or {}).get("status"),
        "remedial_action": {"taken": taken, "proposed": proposed},
    }


REGISTER_COLUMNS = (
    "id", "title", "status", "opened_at", "aware_at", "breach_start", "breach_end", "nature",
    "description", "cause", "detection", "personal_data_breach", "subjects", "records",
    "unintended_recipients", "data_categories", "member_states", "consequences",
    "severity_level", "severity_score", "notify", "decision_reason", "notified_at",
    "delay_reason", "communication", "measures_taken", "measures_proposed",
)


def register_csv(entries: Iterable[dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        facts, effects = e["facts"], e["effects"]
        row = [
            e["id"], e["title"], e["status"], e["opened_at"], e["aware_at"],
            facts["breach_start"], facts["breach_end"], "; ".join(facts["nature"]),
            facts["description"], facts["cause"], facts["detection"],
            "yes" if effects["personal_data_breach"] else "no", effects["subjects"],
            effects["records"], effects["unintended_recipients"],
            "; ".join(effects["data_categories"]), "; ".join(effects["member_states"]),
            "; ".join(effects["consequences"]), e["severity"]["level"], e["severity"]["score"],
            {True: "yes", False: "no", None: "undecided"}[e["decision"]["notify"]],
            e["decision"]["reason"], e["notified_at"], e["delay_reason"], e["communication"],
            "; ".join(e["remedial_action"]["taken"]), "; ".join(e["remedial_action"]["proposed"]),
        ]
        rows.append(row)
    # A spreadsheet must read operator text as text, never as a formula.
    return csv_text(REGISTER_COLUMNS, rows)
