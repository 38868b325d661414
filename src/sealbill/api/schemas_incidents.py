"""Response models of ``/v1/incidents``, ``/v1/ledger`` and ``/v1/sending`` (published in the
OpenAPI document; extra fields allowed and kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sealbill.api.schemas import Out


class IncidentSummary(Out):
    id: str
    title: str
    status: str
    aware_at: datetime


class IncidentEvent(Out):
    at: datetime | str
    event: str
    actor: str | None = None


class Incident(Out):
    id: str
    title: str
    state: str
    aware_at: datetime
    status: dict[str, Any]
    radius: dict[str, Any]
    facts: dict[str, Any]
    measures: dict[str, Any]
    containment: dict[str, Any] | None = None
    events: list[IncidentEvent]


class Assessment(Out):
    method: str
    proposed: dict[str, str]
    proposed_rationale: dict[str, str]
    inputs: dict[str, str]
    adjustments: dict[str, dict[str, str]]
    score: str
    level: str


class Decision(Out):
    notify: bool
    reason: str
    by: str
    at: datetime
    recommended: dict[str, Any]
    communication: dict[str, Any]


class RotatedAccount(Out):
    account_id: str
    reference: str
    retired_public_id: str


class Rotation(Out):
    accounts: list[RotatedAccount]
    tokens_revoked: int


class DraftDocument(Out):
    path: str
    kind: str
    lang: str
    format: str
    sha256: str
    text: str


class Drafts(Out):
    files: list[DraftDocument]
    missing_fields: list[str]


class LedgerRow(Out):
    seq: int
    sent_at: datetime
    message_id: str
    account: str
    invoice: str | None = None
    recipients: list[str]
    data_categories: list[str]
    row_hash: str


class LedgerVerification(Out):
    ok: bool
    rows: int
    problems: list[dict[str, Any]]


class SendingSwitch(Out):
    paused: bool
    changed_at: datetime | None = None
    changed_by: str | None = None
    reason: str | None = None
