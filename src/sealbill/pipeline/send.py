"""Send a run: canary first, then the rest; the guard before every message; the ledger after.

For each outbox row, in this order:
1. in one transaction: read the kill switch (paused -> stop), claim the row (``sending``),
   compose the message (documents, MIME, DKIM) from the stored row, read the guard's facts
   fresh from the tables, run the guard on the exact bytes and SMTP recipients about to be
   used; a violation (a message that cannot be built is one) holds the message, **halts the
   run** and records an alert with the evidence, in that same transaction; otherwise record
   the claims;
2. SMTP;
3. in one transaction: ``sent`` + the ledger row, or ``failed_temporary`` with a backoff, or
   ``failed_permanent`` with the refused contacts flagged.

Invariants:
- nothing reaches SMTP that the guard did not pass in the transaction just before it;
- a run in ``held`` or ``halted`` sends nothing; ``sealbill run approve`` / ``sealbill resume``
  are the only ways forward, and both are recorded;
- the canary slice is sent, and must come out all ``sent``, before any other message;
- after a crash the row left in ``sending`` is sent again with its Message-ID (at most that one
  message may arrive twice, identical); everything else is sent exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain import guard
from sealbill.domain.identifiers import IdentifierIndex
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import Outcome, SendResult
from sealbill.pipeline import compose as composer
from sealbill.store import alerts, ledger, switches
from sealbill.store import outbox as box
from sealbill.store import plans as plan_store
from sealbill.store.schema import accounts, invoices

SENDABLE_RUN = ("approved", "sending")
KILL_ENV = "SEALBILL_TEST_KILL_AT"  # test hook: "<n>:<phase>" -> SIGKILL at the n-th message


class SendError(RuntimeError):
    """The run cannot be sent now (held, halted, not planned)."""


class Transport(Protocol):
    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SendOptions:
    max_attempts: int = 5
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 900.0
    wait_for_retries: bool = True
    max_consecutive_failures: int = 20
    recipient_cap: int = guard.DEFAULT_RECIPIENT_CAP


@dataclass
class SendReport:
    run_id: int
    status: str = ""
    stopped: str | None = None  # paused | halted | canary_failed | smtp_failing
    counts: dict[str, int] = field(default_factory=dict)
    attempted: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    guard_seconds: float = 0.0
    seconds: float = 0.0


def identifier_index(engine: Engine, org_id: int, run_id: int) -> IdentifierIndex:
    """Every account reference of the organization and every invoice number of the run.

    Built once per send: numbers and references of finalized invoices do not change.
    """
    with engine.begin() as conn:
        refs = conn.execute(sa.select(accounts.c.id, accounts.c.reference).where(
            accounts.c.organization_id == org_id))
        entries = [("reference", str(ref), f"account:{aid}") for aid, ref in refs]
        rows = conn.execute(sa.select(invoices.c.id, invoices.c.number, invoices.c.account_id,
                                      invoices.c.account_reference).where(
            invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
            invoices.c.number.is_not(None)))
        for iid, number, aid, printed in rows:
            entries.append(("number", str(number), f"invoice:{iid}"))
            entries.append(("reference", str(printed), f"account:{aid}"))
    return IdentifierIndex.build(entries)


class _Sender:
    def __init__(self, engine: Engine, org_id: int, run_id: int, transport: Transport,
                 signer: DkimSigner | None, options: SendOptions,
                 on_progress: Callable[[int], None] | None) -> None:
        self.engine, self.org_id, self.run_id = engine, org_id, run_id
        self.transport, self.signer, self.options = transport, signer, options
        self.on_progress = on_progress
        self.report = SendReport(run_id)
        self.index = identifier_index(engine, org_id, run_id)
        self.failures_in_a_row = 0
        self.kill_at = _kill_point()

    def phase(self, canary: bool | None) -> str | None:
        """Send every due row of the slice; wait for and retry temporary failures."""
        limit = self.options.max_attempts
        while True:
            with self.engine.begin() as conn:
                rows = box.items(conn, self.org_id, self.run_id, statuses=box.RETRYABLE,
                                 canary=canary)
            at = datetime.now(UTC)
            retry = [r for r in rows if r.status == "failed_temporary" and r.attempts < limit
                     and r.next_attempt_at is not None]
            due = [r for r in rows if r.status != "failed_temporary"]
            due += [r for r in retry if r.next_attempt_at is not None and r.next_attempt_at <= at]
            for item in sorted(due, key=lambda r: r.outbox_id):
                stopped = self.deliver(item)
                if stopped:
                    return stopped
            if due:
                continue
            if not retry or not self.options.wait_for_retries:
                return None
            wake = min(r.next_attempt_at for r in retry if r.next_attempt_at is not None)
            time.sleep(max(0.0, min((wake - at).total_seconds(),
                                    self.options.backoff_max_seconds)) + 0.01)
            with self.engine.begin() as conn:
                if switches.is_paused(conn, self.org_id):
                    return "paused"

    def deliver(self, item: box.OutboxItem) -> str | None:
        self.report.attempted += 1
        n = self.report.attempted
        with self.engine.begin() as conn:
            if switches.is_paused(conn, self.org_id):
                return "paused"
            if not box.claim(conn, self.org_id, item):
                return None  # changed since it was listed: not ours to send now
            composed, violations = self._compose(conn, item)
            started = time.perf_counter()
            if composed is not None:
                fresh = box.fresh_facts(conn, self.org_id, item, self.options.recipient_cap)
                violations = guard.check(
                    guard.Envelope(item.run_id, item.envelope_id, item.invoice_id,
                                   item.account_id, item.recipients, item.attachment_sha256),
                    fresh, guard.Outgoing(composed.outgoing.data, composed.outgoing.rcpt_to),
                    self.index, composer.extract_facturx_xml)
            self.report.guard_seconds += time.perf_counter() - started
            if violations:
                self._halt(conn, item, violations)
                return "halted"
            box.record_claims(conn, self.org_id, item)
        assert composed is not None
        self._maybe_die(n, "claimed")
        result = self.transport.send(composed.outgoing.mail_from, composed.outgoing.rcpt_to,
                                     composed.outgoing.data)
        self._maybe_die(n, "smtp_done")
        with self.engine.begin() as conn:
            self._record(conn, item, composed, result)
        if self.on_progress:
            self.on_progress(1)
        return self._breaker(result)

    def _compose(self, conn: Any, item: box.OutboxItem
                 ) -> tuple[composer.Composed | None, list[guard.Violation]]:
        """The message, or why it cannot be built (refused input is a guard violation: it is
        recorded and the run halted). A database error is not a refusal: it propagates and the
        whole transaction, claim included, is rolled back — nothing was sent."""
        try:
            return composer.compose(conn, self.org_id, item, self.signer), []
        except sa.exc.DBAPIError:
            raise
        except Exception as exc:
            return None, [guard.Violation("build", f"cannot build the message: {exc}",
                                          {"error": type(exc).__name__})]

    def _halt(self, conn: Any, item: box.OutboxItem, violations: list[guard.Violation]) -> None:
        rules = sorted({v.rule for v in violations})
        summary = "; ".join(f"{v.rule}: {v.message}" for v in violations)
        box.mark_held(conn, self.org_id, item.outbox_id, f"guard: {summary}")
        plan_store.set_run_status(conn, self.org_id, self.run_id, "halted",
                                  f"guard stopped {item.message_id}: {summary}"[:500])
        evidence = {"message_id": item.message_id, "envelope_id": item.envelope_id,
                    "invoice_id": item.invoice_id, "account_id": item.account_id,
                    "recipients": [{"contact_id": c, "email": e} for c, e in item.recipients],
                    "violations": [{"rule": v.rule, "message": v.message,
                                    "evidence": dict(v.evidence)} for v in violations]}
        alerts.record(conn, self.org_id, cause="guard:" + ",".join(rules),
                      message=f"guard halted run {self.run_id}: {summary}", evidence=evidence,
                      run_id=self.run_id, envelope_id=item.envelope_id)
        self.report.violations.append(evidence)

    def _record(self, conn: Any, item: box.OutboxItem, composed: composer.Composed,
                result: SendResult) -> None:
        at = datetime.now(UTC)
        attempts = item.attempts + 1
        if result.outcome is Outcome.SENT:
            box.mark_sent(conn, self.org_id, item.outbox_id, at)
            recipients = [{"contact_id": c, "email": e} for c, e in item.recipients]
            extra = [r for r in composed.outgoing.rcpt_to
                     if r not in {e for _, e in item.recipients}]
            recipients += [{"contact_id": None, "email": r, "role": "archive"} for r in extra]
            ledger.append(conn, self.org_id, ledger.LedgerEntry(
                message_id=item.message_id, run_id=item.run_id, account_id=item.account_id,
                account_reference=composed.invoice.account_reference,
                invoice_id=item.invoice_id, invoice_number=composed.invoice.number,
                recipients=recipients, data_categories=composer.data_categories(
                    composed.invoice),
                attachment_sha256=item.attachment_sha256, body_sha256=item.body_sha256,
                queued_at=item.queued_at, sent_at=at))
        elif result.outcome is Outcome.TEMPORARY:
            error = f"{result.code or ''} {result.detail}".strip()
            if attempts >= self.options.max_attempts:
                box.mark_temporary(conn, self.org_id, item.outbox_id,
                                   f"retries exhausted: {error}", None)
                alerts.record(conn, self.org_id, cause="retries_exhausted", run_id=self.run_id,
                              envelope_id=item.envelope_id, message=error,
                              evidence={"message_id": item.message_id, "attempts": attempts})
            else:
                delay = min(self.options.backoff_seconds * 2 ** (attempts - 1),
                            self.options.backoff_max_seconds)
                box.mark_temporary(conn, self.org_id, item.outbox_id, error,
                                   at + timedelta(seconds=delay))
        else:
            refused = {addr.lower() for addr, (code, _) in result.refused.items() if code >= 500}
            bounced = [c for c, e in item.recipients if e.lower() in refused]
            box.mark_permanent(conn, self.org_id, item, f"{result.code} {result.detail}",
                               bounced)

    def _breaker(self, result: SendResult) -> str | None:
        self.failures_in_a_row = 0 if result.outcome is Outcome.SENT else (
            self.failures_in_a_row + 1)
        if self.failures_in_a_row >= self.options.max_consecutive_failures:
            with self.engine.begin() as conn:
                alerts.record(conn, self.org_id, cause="smtp_failing", run_id=self.run_id,
                              message=f"{self.failures_in_a_row} SMTP failures in a row",
                              evidence={"last": result.detail})
            return "smtp_failing"
        return None

    def _maybe_die(self, n: int, phase: str) -> None:
        if self.kill_at == (n, phase):
            os.kill(os.getpid(), signal.SIGKILL)


def _kill_point() -> tuple[int, str] | None:
    value = os.environ.get(KILL_ENV)
    if not value:
        return None
    n, _, phase = value.partition(":")
    return int(n), phase or "claimed"


def send_run(engine: Engine, org_id: int, run_id: int, *, transport: Transport,
             signer: DkimSigner | None, options: SendOptions | None = None,
             on_progress: Callable[[int], None] | None = None) -> SendReport:
    """Deliver the run's queued messages; returns what happened (and why it stopped)."""
    options = options or SendOptions()
    started = time.perf_counter()
    with box.run_lock(engine, org_id, run_id):
        with engine.begin() as conn:
            run = plan_store.run_row(conn, org_id, run_id)
            if plan_store.plan_row(conn, org_id, run_id) is None:
                raise SendError(f"run {run_id} has no delivery plan: `sealbill run plan` first")
            if run["status"] not in SENDABLE_RUN:
                raise SendError(f"run {run_id} is {run['status']}: "
                                + {"held": "approve the plan first (sealbill run approve)",
                                   "halted": "the guard halted it: investigate, then "
                                             "`sealbill resume --run`"}.get(
                                       str(run["status"]), "nothing to send"))
            plan_store.set_run_status(conn, org_id, run_id, "sending")
        sender = _Sender(engine, org_id, run_id, transport, signer, options, on_progress)
        try:
            stopped = sender.phase(canary=True)
            if stopped is None:
                stopped = _check_canary(engine, org_id, run_id)
            if stopped is None:
                stopped = sender.phase(canary=None)
        finally:
            transport.close()
        report = sender.report
        report.stopped = stopped
        with engine.begin() as conn:
            report.counts = box.counts(conn, org_id, run_id)
            status = str(plan_store.run_row(conn, org_id, run_id)["status"])
            if stopped is None and status == "sending" and not _retryable_left(
                    conn, org_id, run_id, options):
                status = "sent"
                plan_store.set_run_status(conn, org_id, run_id, status)
            report.status = status
    report.seconds = time.perf_counter() - started
    return report


def _retryable_left(conn: Any, org_id: int, run_id: int, options: SendOptions) -> bool:
    rows = box.items(conn, org_id, run_id, statuses=box.RETRYABLE)
    return any(r.status != "failed_temporary" or r.attempts < options.max_attempts
               for r in rows)


def _check_canary(engine: Engine, org_id: int, run_id: int) -> str | None:
    """Every canary message must have come out ``sent`` before the rest may go."""
    with engine.begin() as conn:
        rows = box.items(conn, org_id, run_id, canary=True,
                         statuses=("queued", "sending", "failed_temporary", "failed_permanent",
                                   "held"))
        failed = [r for r in rows if r.status != "held" or r.recipients]
        if not failed:
            return None
        plan_store.set_run_status(conn, org_id, run_id, "halted",
                                  f"canary: {len(failed)} messages not delivered")
        alerts.record(conn, org_id, cause="canary_failed", run_id=run_id,
                      message=f"{len(failed)} canary messages were not delivered; the rest "
                              "of the run was not sent",
                      evidence={"messages": [{"message_id": r.message_id, "status": r.status}
                                             for r in failed]})
    return "canary_failed"
