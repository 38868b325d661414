"""Response models (published in the OpenAPI document; extra fields allowed and kept)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class Organization(Out):
    id: str
    slug: str
    legal_name: str
    country: str
    invoice_series: str
    credit_note_series: str
    sender_email: str
    archive_email: str | None = None


class Metric(Out):
    id: str
    code: str
    name: str
    aggregation: str
    field: str | None = None
    allows_negative: bool = False
    min_value: str | None = None
    max_value: str | None = None
    decimal_places: int | None = None


class PriceVersion(Out):
    version: int
    effective_from: date
    charges: list[dict[str, Any]]


class Plan(Out):
    id: str
    code: str
    name: str
    interval: str
    currency: str
    trial_days: int
    prices: list[PriceVersion]


class Change(Out):
    kind: str
    code: str
    action: str
    detail: str | None = None
    stored_outside: int | None = None  # a metric's stored events its new limits refuse


class ApplyResult(Out):
    dry_run: bool
    applied: bool
    changes: list[Change]
    create: int
    change: int
    unchanged: int


class Account(Out):
    id: str
    reference: str
    name: str
    country: str
    currency: str
    locale: str
    archived_at: datetime | None = None


class Link(Out):
    account: str
    account_id: str
    role: str
    status: str


class Contact(Out):
    id: str
    email: str
    links: list[Link]


class BounceResult(Out):
    source: str
    result: str
    detail: str | None = None


class BouncesImported(Out):
    mails: int
    bounced: int
    delayed_recorded: int
    recorded: int
    already_recorded: int
    unknown_message: int
    not_sent_to_that_address: int
    not_a_dsn: int
    results: list[BounceResult]


class VerificationSent(Out):
    contact_id: str
    sent_to: str
    expires_at: datetime


class Phase(Out):
    plan: str
    start_on: date
    end_on: date | None = None


class Subscription(Out):
    id: str
    external_id: str
    account: str
    account_id: str
    plan: str
    started_on: date
    ends_on: date | None = None
    phases: list[Phase]


class UsageEvent(Out):
    id: str
    event_id: str
    account: str
    metric: str
    timestamp: datetime
    value: str | None = None
    voided_at: datetime | None = None
    void_reason: str | None = None


class Run(Out):
    run_id: str
    period: str
    status: str


class SetAside(Out):
    """A message excluded from its run (or the guard's set-aside of it confirmed)."""

    run_id: str
    invoice: str
    message_id: str
    set_aside_by: str
    run_released: bool


class Retried(Out):
    """What ``POST /v1/runs/{id}/retry`` queued again; the next send checks each message with
    the whole guard."""

    run_id: str
    invoice: str | None = None
    status: str
    queued: list[str]
    skipped: list[dict[str, str]] = []
    run_released: bool = False
    corrected: list[list[str]] = []  # [old address, new address] of a corrected contact


class RunProgress(Out):
    """A run on the workers' queue: how far each stage is (read from the database)."""

    run_id: str
    period: str
    status: str
    rating: dict[str, Any]
    invoices: dict[str, int]
    rendered: int
    outbox: dict[str, int]
    jobs: dict[str, int]
    stages: list[dict[str, Any]] = []  # each stage's jobs: done, total, waiting, failed, ...
    workers: list[dict[str, Any]] = []  # the workers running the run's jobs now
    progress_url: str
    enqueued: list[str] = []


class InvoiceSummary(Out):
    id: str
    number: str | None = None
    kind: str
    status: str
    account_reference: str
    currency: str
    total_incl_minor: int


class AuditEntry(Out):
    id: str
    at: datetime
    actor: str
    action: str
    object_kind: str
    object_id: str


class WebhookEndpoint(Out):
    id: str
    url: str
    events: list[str]
    secret: str


class WebhookMessage(Out):
    msg_id: str
    type: str
    attempts: int


class IngestResult(Out):
    received: int
    inserted: int
    duplicates: int


class CreditNote(Out):
    id: str
    number: str
    corrects: str
