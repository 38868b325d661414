"""Send a run: canary first, then the rest; the guard before every message; the ledger after.

For each outbox row, in this order, on one database connection the sender holds for the whole
phase (:mod:`sealbill.pipeline.delivery.pending`):
1. without the write lock: read what the message needs (a read-only snapshot), compose it
   (documents, MIME, DKIM) and let the guard read the exact bytes back (``examine.examine``:
   headers, parts, digests, the XML in the PDF) — a message that cannot be built is a
   violation;
2. in one transaction: first the outcome of the previous message (step 4; its ledger row is
   appended last, just before the commit), then read the guard's facts fresh from the tables
   together with the kill switch and the run's status (paused or no longer sending -> stop,
   before anything is claimed), claim the row
   (``sending``), judge the examined bytes against those facts (``guard.verdict``); a
   violation holds the message, **halts the run** and records an alert with the evidence, in
   that same transaction; otherwise record the (invoice, recipient) claims;
3. SMTP, with exactly the bytes and recipients the guard judged;
4. kept pending, and written at the start of the next message's step 2 — or on its own before
   the sender lists its rows again, waits, returns or raises, whatever the reason: ``sent`` +
   the ledger row, or ``failed_temporary`` with a backoff, or ``failed_permanent`` with the
   refused contacts flagged — per recipient (:mod:`sealbill.pipeline.delivery.outcome`).

Invariants:
- nothing reaches SMTP that the guard did not pass in the transaction just before it;
- a run in ``held`` or ``halted`` sends nothing; ``sealbill run approve`` / ``sealbill resume``
  are the only ways forward, and both are recorded;
- the canary slice is sent before any other message, and the rest goes only if the canary did
  not fail systematically (N of M, or the message itself refused: :mod:`send_checks`);
- SMTP is given only the recipients of the message not yet delivered nor bounced (a subset of
  those the guard judged); a refusal of the *session* (relay or configuration) pauses the run
  (``smtp_session``) without charging the message (:mod:`sealbill.pipeline.delivery.outcome`);
- after a crash the row left in ``sending`` is sent again with its Message-ID (at most that one
  message per sender process may arrive twice, identical: a crash between SMTP accepting
  message k and the claim of k + 1, or the end of the slice); everything else is sent once;
- when :func:`send_run` returns, every message SMTP accepted has its ledger row;
- with ``senders`` > 1, each forked sender owns the rows whose id is its number modulo the
  count; the guard's per-run rule "no (invoice, recipient) pair twice" is also a unique
  constraint, so two senders cannot both take a pair (the second is halted as a violation).
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain import guard, send_policy
from sealbill.domain import recipient_outcomes as rcpts
from sealbill.domain.identifiers import IdentifierSearch
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import Outcome, SendResult
from sealbill.pipeline.delivery import compose as composer
from sealbill.pipeline.delivery import examine as reader
from sealbill.pipeline.delivery import seal_checks
from sealbill.pipeline.delivery.identifier_search import AutomatonSearch
from sealbill.pipeline.delivery.pending import Attempt, OutcomePolicy, SenderConnection
from sealbill.pipeline.delivery.send_checks import check_canary, retryable_left
from sealbill.pipeline.delivery.send_forked import send_forked
from sealbill.pipeline.delivery.send_settings import SendOptions as SendOptions
from sealbill.pipeline.delivery.send_settings import SendReport as SendReport
from sealbill.store.db import is_postgres
from sealbill.store.delivery import alerts, policy_facts, switches
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import plans as plan_store
from sealbill.store.delivery.identifiers import identifier_index
from sealbill.store.delivery.send_lock import run_lock
from sealbill.store.parties import address_rules

SENDABLE_RUN = ("approved", "sending", "paused")  # paused: a relay fault, fixed since
KILL_ENV = "SEALBILL_TEST_KILL_AT"  # test hook: "<n>:<phase>" -> SIGKILL at the n-th message


class SendError(RuntimeError):
    """The run cannot be sent now (held, halted, not planned)."""


class Transport(Protocol):
    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Prepared:
    composed: composer.Composed
    examined: guard.Examined
    examine_seconds: float
    rcpt_to: tuple[str, ...]  # the recipients to send to now (not delivered nor bounced yet)
    settled: frozenset[str]


class _Sender:
    def __init__(self, engine: Engine, org_id: int, run_id: int, transport: Transport,
                 signer: DkimSigner | None, options: SendOptions,
                 on_progress: Callable[[int], None] | None,
                 index: IdentifierSearch | None = None,
                 part: tuple[int, int] | None = None) -> None:
        self.engine, self.org_id, self.run_id = engine, org_id, run_id
        self.transport, self.signer, self.options = transport, signer, options
        self.on_progress = on_progress
        self.report = SendReport(run_id)
        self.index = index or AutomatonSearch(identifier_index(engine, org_id, run_id))
        self.part = part  # (k, n): this sender owns the rows whose id is k modulo n
        # What exists now (the identifier index, the engine, modules) lives for the whole
        # send: moved out of the collector's generations, so that the collections the
        # per-message garbage triggers do not walk it again each time (measured: 10-20 % of
        # the sender's CPU on 10,000 messages).
        gc.collect()
        gc.freeze()
        self.failures_in_a_row = 0
        # The address policy is configuration (the allow-list may name thousands of domains):
        # read once per sender; the facts it is applied to are read fresh for each message.
        with engine.begin() as conn:
            self.address_policy = address_rules.policy_for(conn, org_id)
        self.kill_at = _kill_point()
        self.db = SenderConnection(
            OutcomePolicy(org_id, options.max_attempts,
                          (options.backoff_seconds, options.backoff_max_seconds)), on_progress)

    def phase(self, canary: bool | None) -> str | None:
        """Send every due row of the slice; wait for and retry temporary failures.

        On one connection held for the whole phase, opened here (a forked sender opens its
        own after the fork). Whatever ends the phase (the slice done, a stop, an exception),
        the outcome of its last message is recorded before it returns or raises."""
        with self.db.held(self.engine):
            return self._send_slice(canary)

    def _send_slice(self, canary: bool | None) -> str | None:
        limit = self.options.max_attempts
        while True:
            # Also records the last message's outcome: listed again, it would still be sending.
            with self.db.write() as conn:
                rows = box.items(conn, self.org_id, self.run_id, statuses=box.RETRYABLE,
                                 canary=canary)
            if self.part is not None:
                rows = [r for r in rows if r.outbox_id % self.part[1] == self.part[0]]
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
            # Nothing waits unrecorded through the sleep (the listing above wrote the last
            # outcome already: this keeps the rule from depending on it).
            self.db.flush()
            time.sleep(max(0.0, min((wake - at).total_seconds(),
                                    self.options.backoff_max_seconds)) + 0.01)
            with self.db.write() as conn:
                if switches.is_paused(conn, self.org_id):
                    return "paused"

    def deliver(self, item: box.OutboxItem) -> str | None:
        """Claim, judge and send one message; its outcome stays pending (see the module)."""
        self.report.attempted += 1
        n = self.report.attempted
        prepared, violations = self._prepare(item)
        # One transaction: the previous message's outcome first (db.write), then this claim.
        with self.db.write() as conn:
            started = time.process_time()
            facts = box.send_facts(conn, self.org_id, item, self.options.recipient_cap)
            fresh_read_seconds = time.process_time() - started
            if facts.stop is not None:
                # read before the claim: nothing to undo, and the previous outcome commits
                return facts.stop
            if not box.claim(conn, self.org_id, item):
                return None  # changed since it was listed: not ours to send now
            if prepared is not None:
                violations = self._judge(item, prepared, facts, fresh_read_seconds)
                violations += self._sealed(conn, item, prepared)
                violations += self._policy(conn, item, prepared)
            if not violations:
                violations = self._record_claims(conn, item, facts.claimed_by_this_message)
            if violations:
                self._halt(conn, item, violations)
                return "halted"
        assert prepared is not None
        outgoing = prepared.composed.outgoing
        self._maybe_die(n, "claimed")
        # only the recipients not yet delivered nor bounced: a subset of what the guard judged
        result = self.transport.send(outgoing.mail_from, prepared.rcpt_to, outgoing.data)
        self._maybe_die(n, "smtp_done")
        self.db.hold(Attempt(item, prepared.composed, result, prepared.rcpt_to))
        return self._breaker(result)

    def _prepare(self, item: box.OutboxItem) -> tuple[_Prepared | None, list[guard.Violation]]:
        """The message and the guard's reading of its bytes — or why it cannot be built (a
        refusal: recorded as a violation, the run halted). Nothing here writes or takes the
        write lock: reads run in a read-only snapshot, the rest is computation, so several
        senders do it side by side. A database error is not a refusal: it propagates before
        anything was claimed (the previous message's outcome is then recorded by phase())."""
        try:
            with self.db.read() as conn:
                gathered = composer.gather(conn, self.org_id, item)
            composed = composer.build(gathered, item, self.signer)
        except sa.exc.DBAPIError:
            raise
        except Exception as exc:
            return None, [guard.Violation("build", f"cannot build the message: {exc}",
                                          {"error": type(exc).__name__})]
        started = time.process_time()
        rcpt_now = rcpts.pending(composed.outgoing.rcpt_to, item.outcomes)
        settled = frozenset(k for k, v in item.outcomes.items()
                            if v.get("state") in rcpts.SETTLED)
        if not rcpt_now:
            return None, [guard.Violation("build", "every recipient of this message is already "
                                          "delivered or bounced: nothing to send",
                                          {"outcomes": dict(item.outcomes)})]
        examined = reader.examine(guard.Outgoing(composed.outgoing.data, rcpt_now))
        return _Prepared(composed, examined, time.process_time() - started, rcpt_now,
                         settled), []

    def _judge(self, item: box.OutboxItem, prepared: _Prepared, facts: box.SendFacts,
               fresh_read_seconds: float) -> list[guard.Violation]:
        """The guard's verdict on the examined bytes; its time (reading the bytes, the fresh
        read, the verdict) added to the report."""
        started = time.process_time()
        violations = guard.verdict(
            guard.Envelope(item.run_id, item.envelope_id, item.invoice_id, item.account_id,
                           item.recipients, item.attachment_sha256, prepared.settled),
            facts.fresh, prepared.examined, self.index)
        self.report.guard_seconds += (time.process_time() - started + fresh_read_seconds
                                      + prepared.examine_seconds)
        return violations

    def _sealed(self, conn: Any, item: box.OutboxItem, prepared: _Prepared) -> list[Any]:
        """The seal rule (:mod:`sealbill.pipeline.delivery.seal_checks`), timed in the guard's
        CPU."""
        started, out = time.process_time(), prepared.composed.outgoing
        found = seal_checks.message_violations(conn, self.org_id, item.account_id,
                                               item.recipients, out.mail_from, out.rcpt_to)
        self.report.seal_seconds += (spent := time.process_time() - started)
        self.report.guard_seconds += spent
        return found

    def _policy(self, conn: Any, item: box.OutboxItem,
                prepared: _Prepared) -> list[guard.Violation]:
        """The guard's policy rules (address policy, archive, approval), on facts read now."""
        started = time.process_time()
        facts = policy_facts.read(conn, self.org_id, item.envelope_id)
        found = send_policy.violations(item.account_id, item.recipients, prepared.rcpt_to,
                                       self.address_policy, facts)
        self.report.guard_seconds += time.process_time() - started
        return found

    def _record_claims(self, conn: Any, item: box.OutboxItem,
                       have: frozenset[int]) -> list[guard.Violation]:
        """Take the (invoice, recipient) pairs. On PostgreSQL two senders can pass their fresh
        reads at the same moment; the unique constraint then keeps the second from taking a
        pair the first holds (``ON CONFLICT DO NOTHING``: it waits for the first to commit),
        which is the guard's rule 4 and halts the run like any violation. SQLite's single
        writer makes that race impossible."""
        if not is_postgres(conn):
            box.record_claims(conn, self.org_id, item, have)
            return []
        held_elsewhere = box.take_claims(conn, self.org_id, item, have)
        if not held_elsewhere:
            return []
        return [guard.Violation("run_limits", "this invoice already went to this recipient "
                                "(claimed by another sender)",
                                {"invoice_id": item.invoice_id,
                                 "contact_ids": sorted(held_elsewhere)})]

    def _halt(self, conn: Any, item: box.OutboxItem, violations: list[guard.Violation]) -> None:
        rules = sorted({v.rule for v in violations})
        summary = "; ".join(f"{v.rule}: {v.message}" for v in violations)
        plan_store.set_run_status(conn, self.org_id, self.run_id, "halted",
                                  f"guard stopped {item.message_id}: {summary}"[:500])
        evidence = {"message_id": item.message_id, "envelope_id": item.envelope_id,
                    "invoice_id": item.invoice_id, "account_id": item.account_id,
                    "recipients": [{"contact_id": c, "email": e} for c, e in item.recipients],
                    "violations": [{"rule": v.rule, "message": v.message,
                                    "evidence": dict(v.evidence)} for v in violations]}
        # this message only is set aside (with why); the run halts until an operator acts
        box.mark_set_aside(conn, self.org_id, item.outbox_id, by="guard",
                           reason=f"guard: {summary}", evidence=evidence)
        alerts.record(conn, self.org_id, cause="guard:" + ",".join(rules),
                      message=f"guard halted run {self.run_id}: {summary}", evidence=evidence,
                      run_id=self.run_id, envelope_id=item.envelope_id)
        self.report.violations.append(evidence)

    def _breaker(self, result: SendResult) -> str | None:
        if result.outcome is Outcome.SESSION:
            return "smtp_session"  # recorded with the pending outcome: the run is paused
        self.failures_in_a_row = 0 if result.outcome is Outcome.SENT else (
            self.failures_in_a_row + 1)
        if self.failures_in_a_row >= self.options.max_consecutive_failures:
            with self.db.write() as conn:  # with the outcome of the message that failed
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
             on_progress: Callable[[int], None] | None = None,
             transport_factory: Callable[[], Transport] | None = None) -> SendReport:
    """Deliver the run's queued messages; returns what happened (and why it stopped).

    The canary slice goes through ``transport`` in this process. The rest too, unless
    ``options.senders`` > 1 and a ``transport_factory`` is given: then that many forked
    sender processes share the rest (each its own slice of the outbox, own connections, the
    guard before each of its messages); a guard violation in one halts the run, and the others
    stop before their next message (they read the run's status in every claiming
    transaction). A crash leaves at most one message per sender in ``sending``.
    """
    options = options or SendOptions()
    started = time.perf_counter()
    cpu = time.process_time()
    with run_lock(engine, org_id, run_id):
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
        if (history := seal_checks.history_halt(engine, org_id, run_id)) is not None:
            return SendReport(run_id, status="halted", stopped="halted", violations=[history])
        sender = _Sender(engine, org_id, run_id, transport, signer, options, on_progress)
        report = sender.report
        try:
            stopped = sender.phase(canary=True)
            if stopped is None:
                stopped = check_canary(engine, org_id, run_id, options.canary_min_failures,
                                       options.canary_failure_share)
            if stopped is None and options.senders > 1 and transport_factory is not None:
                transport.close()
                stopped = send_forked(sender, transport_factory, options.senders,
                                      lambda k, n, progress: _Sender(
                                          sender.engine, org_id, run_id, transport_factory(),
                                          signer, options, progress, sender.index, (k, n)))
            elif stopped is None:
                stopped = sender.phase(canary=None)
        finally:
            transport.close()
        report.stopped = stopped
        report.cpu_seconds += time.process_time() - cpu
        with engine.begin() as conn:
            report.counts = box.counts(conn, org_id, run_id)
            status = str(plan_store.run_row(conn, org_id, run_id)["status"])
            if stopped is None and status == "sending" and not retryable_left(
                    conn, org_id, run_id, options.max_attempts):
                # "incomplete": the rest went, but messages were set aside or failed
                # (`run status` lists them, `run retry` re-queues them)
                left = ("set_aside", "failed_permanent", "failed_temporary")
                status = "incomplete" if any(report.counts.get(s) for s in left) else "sent"
                plan_store.set_run_status(conn, org_id, run_id, status)
            report.status = status
    report.seconds = time.perf_counter() - started
    gc.unfreeze()  # a long-lived caller (a server) gets its objects collectable again
    return report


