"""What an Art. 33 notification must say, and which of it is still missing.

The fields are the ones the French authority's notification form asks for, which cover Art.
33(3)(a)-(d): (a) nature, categories and approximate numbers of subjects and records; (b) DPO
or contact point; (c) likely consequences; (d) measures taken or proposed; plus the
notification type (Art. 33(4): in phases), the times, and the reasons for a late notification.

Invariants:
- :func:`missing_fields` is the single definition of "complete": the status command and the
  drafts both call it, so the clock and the paperwork cannot disagree on what is missing;
- a field counts as missing when it is absent or blank, never because of its value: "no
  unintended recipient" is a fact, not a gap;
- the reasons for delay are required exactly when the notification is late;
- an exemption from communicating to the subjects names its Art. 34(3) point and a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NOTIFICATION_TYPES = ("initial", "complementary", "complete")
NATURES = ("confidentiality", "integrity", "availability")
COMMUNICATION_STATUSES = ("done", "planned", "exempt", "not_required")
EXEMPTIONS = {
    "a": "the data was unintelligible to the recipients (e.g. encrypted)",
    "b": "later measures make the high risk no longer likely to materialise",
    "c": "individual communication would involve disproportionate effort (public "
         "communication instead)",
}

#: Field key -> English label, in the order of the notification form.
FIELD_LABELS: dict[str, str] = {
    "notification_type": "Notification type (initial / complementary / complete)",
    "aware_at": "Time of awareness",
    "delay_reason": "Reasons for the delay (notification after 72 hours)",
    "controller": "Controller name and contact",
    "dpo": "Data protection officer or other contact point (Art. 33(3)(b))",
    "breach_period": "Breach start and end",
    "detection": "How the breach was detected",
    "nature": "Nature of the breach (confidentiality / integrity / availability)",
    "cause": "Cause of the breach",
    "description": "Description of the breach (Art. 33(3)(a))",
    "subjects": "Categories and approximate number of data subjects (Art. 33(3)(a))",
    "records": "Approximate number of personal-data records (Art. 33(3)(a))",
    "data_categories": "Categories of personal data",
    "member_states": "Member states concerned",
    "consequences": "Likely consequences (Art. 33(3)(c))",
    "severity": "Severity assessment inputs",
    "measures": "Measures taken or proposed, including mitigation (Art. 33(3)(d))",
    "communication": "Communication to the data subjects (Art. 34)",
}


@dataclass(frozen=True)
class NoticeFacts:
    """The facts a notification is drafted from; None or empty means "not known yet"."""

    aware_at: datetime
    late: bool
    notification_type: str | None = None
    notified_at: datetime | None = None
    delay_reason: str | None = None
    controller_name: str | None = None
    controller_contact: str | None = None
    dpo_name: str | None = None
    dpo_email: str | None = None
    breach_start: datetime | None = None
    breach_end: datetime | None = None
    detection: str | None = None
    nature: Sequence[str] = ()
    cause: str | None = None
    description: str | None = None
    subject_categories: Sequence[str] = ()
    subject_count: int | None = None
    record_count: int | None = None
    data_categories: Sequence[str] = ()
    countries: Sequence[str] = ()
    member_states: Sequence[str] = ()
    consequences: Sequence[str] = ()
    severity: Mapping[str, Any] | None = None
    measures_taken: Sequence[str] = ()
    measures_proposed: Sequence[str] = ()
    communication: str | None = None
    communication_exemption: str | None = None
    communication_reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Sequence | Mapping):
        return len(value) == 0
    return False


def missing_fields(facts: NoticeFacts) -> tuple[str, ...]:
    """The keys of :data:`FIELD_LABELS` the notification cannot yet fill, in form order.

    >>> from datetime import UTC
    >>> facts = NoticeFacts(aware_at=datetime(2026, 5, 15, tzinfo=UTC), late=True)
    >>> "delay_reason" in missing_fields(facts), "aware_at" in missing_fields(facts)
    (True, False)
    """
    checks: dict[str, bool] = {
        "notification_type": facts.notification_type not in NOTIFICATION_TYPES,
        "aware_at": False,  # the incident cannot be opened without it
        "delay_reason": facts.late and _blank(facts.delay_reason),
        "controller": _blank(facts.controller_name) or _blank(facts.controller_contact),
        "dpo": _blank(facts.dpo_name) or _blank(facts.dpo_email),
        "breach_period": facts.breach_start is None or facts.breach_end is None,
        "detection": _blank(facts.detection),
        "nature": _blank(facts.nature) or any(n not in NATURES for n in facts.nature),
        "cause": _blank(facts.cause),
        "description": _blank(facts.description),
        "subjects": facts.subject_count is None or (
            facts.subject_count > 0 and _blank(facts.subject_categories)),
        "records": facts.record_count is None,
        "data_categories": bool(facts.record_count) and _blank(facts.data_categories),
        "member_states": bool(facts.subject_count) and _blank(facts.countries),
        "consequences": _blank(facts.consequences),
        "severity": _blank(facts.severity),
        "measures": _blank(facts.measures_taken) and _blank(facts.measures_proposed),
        "communication": _communication_missing(facts),
    }
    return tuple(key for key in FIELD_LABELS if checks[key])


def _communication_missing(facts: NoticeFacts) -> bool:
    if facts.communication not in COMMUNICATION_STATUSES:
        return True
    if facts.communication == "exempt" and facts.communication_exemption not in EXEMPTIONS:
        return True
    return (facts.communication in ("exempt", "not_required")
            and _blank(facts.communication_reason))
