"""What SMTP answered for one message, written down: the outbox state, and the ledger row.

Invariants: ``sent`` and its ledger row are written in the caller's one transaction (the ledger
is complete: every message SMTP accepted has its row) — :func:`record_state` writes the state
and returns the ledger entry, which the caller appends before that transaction commits; the
archive copy is recorded as such (``role: archive``, no contact); a temporary failure is retried
with exponential backoff until ``max_attempts``, then left for the operator with an alert; a
permanent one flags the refused contacts as bounced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sealbill.mail.smtp import Outcome, SendResult
from sealbill.pipeline import compose as composer
from sealbill.store import alerts, ledger
from sealbill.store import outbox as box


def record_state(conn: Any, org_id: int, item: box.OutboxItem, composed: composer.Composed,
                 result: SendResult, *, max_attempts: int,
                 backoff: tuple[float, float]) -> ledger.LedgerEntry | None:
    """The outbox state for ``result``; for a sent message, the ledger entry the caller must
    append in this same transaction (on PostgreSQL the append takes the organization's chain
    lock until commit, so a caller with more to do appends last)."""
    at = datetime.now(UTC)
    attempts = item.attempts + 1
    if result.outcome is Outcome.SENT:
        box.mark_sent(conn, org_id, item.outbox_id, at)
        recipients = [{"contact_id": c, "email": e} for c, e in item.recipients]
        extra = [r for r in composed.outgoing.rcpt_to
                 if r not in {e for _, e in item.recipients}]
        recipients += [{"contact_id": None, "email": r, "role": "archive"} for r in extra]
        return ledger.LedgerEntry(
            message_id=item.message_id, run_id=item.run_id, account_id=item.account_id,
            account_reference=composed.invoice.account_reference,
            invoice_id=item.invoice_id, invoice_number=composed.invoice.number,
            recipients=recipients, data_categories=composer.data_categories(composed.invoice),
            attachment_sha256=item.attachment_sha256, body_sha256=item.body_sha256,
            queued_at=item.queued_at, sent_at=at)
    if result.outcome is Outcome.TEMPORARY:
        error = f"{result.code or ''} {result.detail}".strip()
        if attempts >= max_attempts:
            box.mark_temporary(conn, org_id, item.outbox_id, f"retries exhausted: {error}", None)
            alerts.record(conn, org_id, cause="retries_exhausted", run_id=item.run_id,
                          envelope_id=item.envelope_id, message=error,
                          evidence={"message_id": item.message_id, "attempts": attempts})
        else:
            first, cap = backoff
            delay = min(first * 2 ** (attempts - 1), cap)
            box.mark_temporary(conn, org_id, item.outbox_id, error,
                               at + timedelta(seconds=delay))
    else:
        refused = {addr.lower() for addr, (code, _) in result.refused.items() if code >= 500}
        bounced = [c for c, e in item.recipients if e.lower() in refused]
        box.mark_permanent(conn, org_id, item, f"{result.code} {result.detail}", bounced)
    return None
