"""The dossier of an incident: record, timeline, blast radius and clock, assembled once.

Status, register and drafts all read a :class:`Dossier`, so they state the same facts.

Invariants:
- the blast radius numbers come from the effective (corrected) view only;
- an operator's statement wins over a derived default (breach start/end, description,
  consequences); derived defaults are used only where the operator said nothing;
- measures derived from the timeline (kill switch, rotation) are stated with the instant the
  timeline records, never with "now";
- ``missing`` is :func:`sealbill.domain.breach_notice.missing_fields` of ``facts``: nothing
  else decides what a notification lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sealbill.domain.blast_radius import BlastRadius
from sealbill.domain.breach_clock import ClockReading, read_clock
from sealbill.domain.breach_notice import NoticeFacts, missing_fields
from sealbill.incident import labels


def when(value: datetime | str | None) -> str:
    """One unambiguous format for every draft: ``2026-05-14 11:35 UTC``."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Dossier:
    org: Mapping[str, Any]
    incident: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]
    radius: BlastRadius
    clock: ClockReading
    facts: NoticeFacts
    missing: tuple[str, ...]
    ledger_problems: Sequence[Mapping[str, Any]] = ()

    @property
    def record(self) -> Mapping[str, Any]:
        return self.incident["record"]  # type: ignore[no-any-return]

    @property
    def view(self) -> Any:
        return self.radius.effective

    def consequences(self, lang: str) -> list[str]:
        stated = list(self.record["facts"].get("consequences") or [])
        if stated:
            return stated
        return [labels.consequence_label(key, lang)
                for key in labels.likely_consequences(self.view.data_categories)]

    def measures(self, lang: str) -> tuple[list[str], list[str]]:
        """(taken, proposed): the timeline's and the operator's, in that order."""
        measures = self.record["measures"]
        auto = labels.AUTO_MEASURES
        taken: list[str] = []
        proposed: list[str] = []
        containment = self.record.get("containment")
        if containment:
            taken.append(auto["sending_paused"][lang].format(at=when(containment["at"])))
        for rotation in self.record.get("rotations") or []:
            taken.append(auto["rotated"][lang].format(
                accounts=len(rotation["accounts"]), tokens=rotation["tokens_revoked"],
                at=when(rotation["at"])))
        count = len(self.view.recipients)
        if count and measures.get("deletion_requested_at"):
            taken.append(auto["deletion_requested"][lang].format(
                count=count, at=when(measures["deletion_requested_at"])))
        elif count:
            proposed.append(auto["deletion_to_request"][lang].format(count=count))
        if self.view.has_leak and measures.get("customers_warned_at"):
            taken.append(auto["customers_warned"][lang].format(
                at=when(measures["customers_warned_at"])))
        elif self.view.has_leak:
            proposed.append(auto["customers_to_warn"][lang])
        taken.extend(measures.get("taken") or [])
        proposed.extend(measures.get("proposed") or [])
        return taken, proposed

    def subject_categories(self, lang: str) -> list[str]:
        view = self.view
        out = []
        if view.consumer_count:
            out.append(f"{labels.SUBJECT_CATEGORIES['consumers'][lang]} ({view.consumer_count})")
        businesses = view.subject_count - view.consumer_count
        if businesses:
            out.append(f"{labels.SUBJECT_CATEGORIES['business'][lang]} ({businesses})")
        return out

    def description(self, lang: str = "en") -> str | None:
        """The operator's description, else the ledger's facts in one sentence."""
        stated = self.record["facts"].get("description")
        if stated:
            return str(stated)
        view = self.view
        if not view.has_leak:
            return None
        return labels.SUMMARY[lang].format(
            records=view.record_count, subjects=view.subject_count,
            recipients=len(view.recipients), disclosures=view.disclosure_count,
            first=when(view.first_sent_at), last=when(view.last_sent_at))


def build_dossier(org: Mapping[str, Any], incident: Mapping[str, Any],
                  events: Sequence[Mapping[str, Any]], radius: BlastRadius,
                  now: datetime, *,
                  ledger_problems: Sequence[Mapping[str, Any]] = ()) -> Dossier:
    record = incident["record"]
    notification = record["notification"]
    clock = read_clock(incident["aware_at"], now,
                       notified_at=_parse(notification.get("notified_at")),
                       delay_reason=notification.get("delay_reason"))
    partial = Dossier(org, incident, events, radius, clock,
                      NoticeFacts(aware_at=incident["aware_at"], late=clock.late), ())
    facts = _notice_facts(partial)
    return Dossier(org, incident, events, radius, clock, facts, missing_fields(facts),
                   ledger_problems)


def _notice_facts(d: Dossier) -> NoticeFacts:
    record, view, org = d.record, d.view, d.org
    stated = record["facts"]
    severity = record.get("severity")
    decision = record.get("decision") or {}
    communication = decision.get("communication") or {}
    taken, proposed = d.measures("en")
    nature = list(stated.get("nature") or (["confidentiality"] if view.has_leak else []))
    return NoticeFacts(
        aware_at=d.incident["aware_at"],
        late=d.clock.late,
        notification_type=record["notification"].get("type"),
        notified_at=d.clock.notified_at,
        delay_reason=record["notification"].get("delay_reason"),
        controller_name=org.get("legal_name"),
        controller_contact=org.get("sender_email") or org.get("phone"),
        dpo_name=org.get("dpo_name"),
        dpo_email=org.get("dpo_email"),
        breach_start=_parse(stated.get("breach_start")) or view.first_sent_at,
        breach_end=_parse(stated.get("breach_end")) or view.last_sent_at,
        detection=stated.get("detection"),
        nature=nature,
        cause=stated.get("cause"),
        description=d.description(),
        subject_categories=d.subject_categories("en"),
        subject_count=view.subject_count,
        record_count=view.record_count,
        data_categories=list(view.data_categories),
        countries=[*view.member_states, *view.other_countries],
        member_states=list(view.member_states),
        consequences=d.consequences("en"),
        severity=severity,
        measures_taken=taken,
        measures_proposed=proposed,
        communication=communication.get("status"),
        communication_exemption=communication.get("exemption"),
        communication_reason=communication.get("reason"),
    )
