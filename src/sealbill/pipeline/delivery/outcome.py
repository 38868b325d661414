"""What SMTP answered for one message, written down: the outbox state, and the ledger row.

Invariants:
- the outcome is recorded **per recipient** (:mod:`sealbill.domain.recipient_outcomes`): a
  message the server accepted for some recipients is delivered to them, and its ledger row
  lists exactly those (the archive copy as ``role: archive``, no contact); a recipient
  refused permanently at ``RCPT`` is a bounce and its contact is flagged; a later attempt goes
  only to the recipients neither delivered nor bounced (same bytes, same Message-ID), and its
  acceptance gets a ledger row of its own (``part``) listing only them;
- every acceptance and its ledger row are written in the caller's one transaction (the ledger
  is complete) — :func:`record_state` writes the state and returns the ledger entry, which the
  caller appends before that transaction commits;
- a temporary failure is retried with exponential backoff until ``max_attempts``, then left for
  the operator with an alert (``sealbill run retry``);
- a session fault (the relay refused *us*: connection, TLS, AUTH, ``MAIL FROM``, a refusal
  naming the client) is not the message's: the claim is undone (no attempt charged), no
  contact is flagged, and the run pauses (``paused``) with an alert carrying the server's
  reply, until ``sealbill run send`` (or ``resume``) after the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sealbill.domain import recipient_outcomes as rcpts
from sealbill.mail.smtp import Outcome, SendResult
from sealbill.pipeline.delivery import compose as composer
from sealbill.store.delivery import alerts, ledger
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_outcomes as outcomes_store
from sealbill.store.delivery import plans as plan_store

PAUSED = "paused"  # the run's status after a session fault


def record_state(conn: Any, org_id: int, item: box.OutboxItem, composed: composer.Composed,
                 result: SendResult, *, max_attempts: int, backoff: tuple[float, float],
                 sent: list[tuple[int, datetime]],
                 rcpt_to: tuple[str, ...] | None = None) -> ledger.LedgerEntry | None:
    """The outbox state for ``result`` (``rcpt_to``: the recipients this attempt went to; all
    of the message's by default); for an acceptance, the ledger entry the caller must append in
    this same transaction (on PostgreSQL the append takes the organization's chain lock until
    commit, so a caller with more to do appends last). ``sent``: the common case (accepted
    for every recipient at once) is added to it as (outbox id, time), not written: the caller
    marks the batch ``sent`` with one statement, in this same transaction
    (:func:`~sealbill.store.delivery.outbox_batches.mark_sent_many`)."""
    at = datetime.now(UTC)
    full = composed.outgoing.rcpt_to
    tried = full if rcpt_to is None else rcpt_to
    if result.outcome is Outcome.SESSION:
        _pause(conn, org_id, item, result)
        return None
    if (result.outcome is Outcome.SENT and not item.outcomes and tried == full
            and not result.refused):
        sent.append((item.outbox_id, at))  # the common case: all at once
        return _entry(item, composed, full, at, part=1)
    accepted = result.accepted or (tried if result.outcome is Outcome.SENT else ())
    merged = rcpts.merge(item.outcomes, rcpts.Attempt(
        result.outcome.value, tried, tuple(accepted), result.refused, result.code,
        result.detail), at.isoformat())
    status = rcpts.status(full, merged.outcomes, [e for _, e in item.recipients])
    contact_of = {rcpts.key(e): c for c, e in item.recipients}
    bounced = [contact_of[rcpts.key(a)] for a in merged.bounced_now if rcpts.key(a) in contact_of]
    error = _summary(merged.outcomes, result)
    if bounced:
        outcomes_store.flag_bounced(conn, org_id, bounced, error)
    if any(rcpts.key(a) not in contact_of for a in merged.bounced_now):
        alerts.record(conn, org_id, cause="archive_bounced", run_id=item.run_id,
                      envelope_id=item.envelope_id, message=f"the archive copy was refused: "
                      f"{error}", evidence={"message_id": item.message_id})
    delivered = [c for k, c in contact_of.items()
                 if (merged.outcomes.get(k) or {}).get("state") == rcpts.DELIVERED]
    if status == "failed_temporary":
        attempts = item.attempts + 1
        if attempts >= max_attempts:
            outcomes_store.record_outcomes(conn, org_id, item.outbox_id, status=status,
                                outcomes=merged.outcomes, error=f"retries exhausted: {error}")
            alerts.record(conn, org_id, cause="retries_exhausted", run_id=item.run_id,
                          envelope_id=item.envelope_id, message=error,
                          evidence={"message_id": item.message_id, "attempts": attempts})
        else:
            first, cap = backoff
            delay = min(first * 2 ** (attempts - 1), cap)
            outcomes_store.record_outcomes(conn, org_id, item.outbox_id, status=status,
                                outcomes=merged.outcomes, error=error,
                                next_attempt_at=at + timedelta(seconds=delay))
    elif status == "sent":
        outcomes_store.record_outcomes(conn, org_id, item.outbox_id, status=status,
                            outcomes=merged.outcomes, error=error if result.refused else None,
                            sent_at=at)
        outcomes_store.release_claims(conn, item.outbox_id, keep=delivered)
    else:
        outcomes_store.record_outcomes(conn, org_id, item.outbox_id, status=status,
                            outcomes=merged.outcomes, error=error)
        outcomes_store.release_claims(conn, item.outbox_id, keep=delivered)
    if not merged.delivered_now:
        return None
    before = sum(1 for v in item.outcomes.values() if v.get("state") == rcpts.DELIVERED)
    return _entry(item, composed, merged.delivered_now, at, part=before + 1)


def _pause(conn: Any, org_id: int, item: box.OutboxItem, result: SendResult) -> None:
    reply = f"{result.code or ''} {result.detail}".strip()
    outcomes_store.unclaim(conn, org_id, item)
    run = plan_store.run_row(conn, org_id, item.run_id)
    if run["status"] == "sending":
        plan_store.set_run_status(conn, org_id, item.run_id, PAUSED,
                                  f"SMTP session refused (configuration): {reply}"[:500])
    alerts.record(conn, org_id, cause="smtp_session", run_id=item.run_id,
                  envelope_id=item.envelope_id,
                  message=f"the SMTP relay refused the session, not a recipient: {reply}; "
                          "no message was charged and no contact flagged. Fix the SMTP "
                          "settings or the relay, then `sealbill run send` continues",
                  evidence={"message_id": item.message_id, "code": result.code,
                            "reply": result.detail})


def _summary(outcomes: rcpts.Outcomes, result: SendResult) -> str:
    """One line: each recipient not delivered, with the server's reply."""
    parts = [f"{address}: {v.get('state')} {v.get('code') or ''} {v.get('reply') or ''}".strip()
             for address, v in outcomes.items() if v.get("state") != rcpts.DELIVERED]
    return "; ".join(parts) or f"{result.code or ''} {result.detail}".strip()


def _entry(item: box.OutboxItem, composed: composer.Composed, delivered: tuple[str, ...],
           at: datetime, *, part: int) -> ledger.LedgerEntry:
    contact_of = {rcpts.key(e): (c, e) for c, e in item.recipients}
    recipients: list[dict[str, Any]] = [
        {"contact_id": contact_of[rcpts.key(r)][0], "email": contact_of[rcpts.key(r)][1]}
        for r in delivered if rcpts.key(r) in contact_of]
    recipients += [{"contact_id": None, "email": r, "role": "archive"} for r in delivered
                   if rcpts.key(r) not in contact_of]
    return ledger.LedgerEntry(
        message_id=item.message_id, run_id=item.run_id, account_id=item.account_id,
        account_reference=composed.invoice.account_reference,
        invoice_id=item.invoice_id, invoice_number=composed.invoice.number,
        recipients=recipients, data_categories=composer.data_categories(composed.invoice),
        attachment_sha256=item.attachment_sha256, body_sha256=item.body_sha256,
        queued_at=item.queued_at, sent_at=at, part=part,
        document_kind=composed.invoice.kind.value)
