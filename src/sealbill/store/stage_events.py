"""Facts the pipeline stages publish *inside* the transaction that makes them true: an invoice
numbered, a run's status changed, an alert recorded, a ledger row appended, a run's drafts
recorded, a chunk of rendered documents stored.

Invariant: :func:`publish` runs every subscriber on the caller's connection, in its
transaction, so whatever a subscriber writes (the application layer writes the webhooks'
outbox rows and the stage's audit entry) commits with the state change or not at all: a crash
between the two can no longer keep the change and lose its event. A subscriber that raises
rolls the stage's transaction back. With no subscriber (the pipeline used on its own),
publishing does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection

INVOICES_FINALIZED = "invoices.finalized"  # {"run_id", "invoice_ids"}
RUN_STATUS = "run.status"  # {"run_id", "status", "reason"}
ALERT_RECORDED = "alert.recorded"  # {"alert_id", "run_id", "cause", "message", "created_at"}
LEDGER_APPENDED = "ledger.appended"  # {"seq", "message_id", "invoice_id", ...}
RUN_BILLED = "run.billed"  # {"run_id", "period", "drafted", "already_billed", "skipped_zero",
#                            "problems", "totals"}: the end of the rating transaction
INCIDENT_EVENT = "incident.event"  # {"incident_id", "event", "detail"}: its timeline grew
DOCUMENTS_STORED = "documents.stored"  # {"run_id", "invoice_ids"}: one rendered chunk stored

Subscriber = Callable[[Connection, int, str, Mapping[str, Any]], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Run ``subscriber`` on every fact published from now on (once, however often added)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def publish(conn: Connection, org_id: int, event: str, facts: Mapping[str, Any]) -> None:
    for subscriber in tuple(_subscribers):
        subscriber(conn, org_id, event, facts)
