"""Bodies of the incident and sending-switch use cases (validated before anything is written;
times must carry their offset: a naive time is refused, never guessed)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from sealbill.inputs.models import Model, Text

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
Notes = Annotated[list[Note], Field(max_length=50, default_factory=list)]


class IncidentIn(Model):
    title: Text
    aware_at: Annotated[AwareDatetime, Field(description="When the controller became aware "
                                             "(the 72-hour clock starts here).")]
    window_from: AwareDatetime | None = None
    window_to: AwareDatetime | None = None
    run_id: Annotated[str | None, Field(description="Only this billing run (run_…).")] = None
    message_ids: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=300)]],
                           Field(max_length=1000, default_factory=list)]
    pause_sending: bool = False
    description: Annotated[str, Field(max_length=2000, description="What happened, as known "
                                      "now (recorded with the opening).")] = ""


class IncidentUpdateIn(Model):
    """Facts replace; lists (nature, consequences, measures) are appended to."""

    description: Note | None = None
    cause: Note | None = None
    detection: Note | None = None
    breach_start: AwareDatetime | None = None
    breach_end: AwareDatetime | None = None
    nature: Notes
    consequences: Notes
    measures_taken: Annotated[list[Note], Field(max_length=50, default_factory=list,
                                                description="Containment steps taken "
                                                "(appended).")]
    measures_proposed: Notes
    deletion_requested_at: AwareDatetime | None = None
    customers_warned_at: AwareDatetime | None = None
    notification_type: Literal["initial", "complementary", "complete"] | None = None
    notified_at: AwareDatetime | None = None
    delay_reason: Note | None = None


class ReasonIn(Model):
    reason: Reason


class PauseIn(Model):
    reason: Reason | None = None


InputName = Literal["dpc", "ei", "cb_confidentiality", "cb_integrity", "cb_availability",
                    "cb_malicious"]  # the ENISA inputs (domain.severity.INPUT_NAMES)
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]


class AssessIn(Model):
    """Changes to the proposed ENISA inputs (``dpc``, ``ei``, ``cb_*``), each justified."""

    changes: Annotated[dict[InputName,
                            Annotated[str, StringConstraints(max_length=20)]],
                       Field(default_factory=dict)]
    justifications: Annotated[dict[InputName, Note],
                              Field(default_factory=dict)]
    recipients_known: bool = True


class DecisionIn(Model):
    """The decision to notify the authority or not, with its reasoning (Art. 33(5))."""

    notify: bool
    reason: Reason
    communication: Literal["done", "planned", "exempt", "not_required"] | None = None
    exemption: Literal["a", "b", "c"] | None = None
    communication_reason: Annotated[str, StringConstraints(max_length=2000)] = ""


class LinkCorrectionIn(Model):
    """A contact <-> account link judged (not) entitled over [valid_from, valid_to)."""

    contact: Annotated[Short, Field(description="Contact public id (con_…) or address.")]
    account: Annotated[Short, Field(description="Account public id (acc_…) or reference.")]
    entitled: bool = False
    reason: Reason
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
