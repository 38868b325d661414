"""Send a run: canary first, then the rest; the guard before every message; the ledger after.

A sender works through its rows in **batches** of at most ``SendOptions.batch`` messages (100
by default), on one database connection it holds for the whole phase
(:mod:`sealbill.pipeline.delivery.pending`):
1. without the write lock: read what the batch needs in one read-only snapshot, compose each
   message (documents, MIME, DKIM) and let the guard read its exact bytes back
   (``examine.examine``: headers, parts, digests, the XML in the PDF) — a message that cannot
   be built is a violation. The read comes before the previous batch's judging; the rest
   runs in a thread while the previous batch waits for SMTP (step 3:
   :mod:`sealbill.pipeline.delivery.send_ahead`) — computation only, dropped if it stops;
2. in one transaction: first the outcomes of the previous batch (step 4; their ledger rows
   appended last, just before the commit), then (:mod:`sealbill.pipeline.delivery.
   send_judging`) read the guard's facts fresh from the tables for each message of the batch,
   together with the kill switch and the run's status (paused or no longer sending -> stop,
   before anything is claimed), claim the rows (``sending``), and for each message in order
   judge the examined bytes against its facts (``guard.verdict``) — seeing the claims of the
   messages before it —, the seal rule and the policy rules; then record the (invoice,
   recipient) claims of those that passed (each statement once per message, for the batch at
   once: one round trip a batch on PostgreSQL). A violation by the first message of the
   batch **halts the run** and records an alert with the evidence in that same transaction; a
   violation by a later one cuts the batch before it: the messages before it go, and it is
   judged again, fresh and first, in the next transaction;
3. SMTP, one message after the other on one connection, with exactly the bytes and recipients
   the guard judged — each **at most** ``FRESH_SECONDS`` (1 s) after its fresh read: when the
   batch has taken longer, the messages not sent yet are judged again first (a write
   transaction that also records the outcomes so far);
4. kept pending, and written at the start of the next write transaction — or on their own
   before the sender lists its rows again, waits, returns or raises, whatever the reason:
   ``sent`` + the ledger row, or ``failed_temporary`` with a backoff, or ``failed_permanent``
   with the refused contacts flagged — per recipient
   (:mod:`sealbill.pipeline.delivery.outcome`). Claimed messages the batch did not send (it
   stopped early) are returned to the state they were claimed from in that transaction.

Invariants:
- nothing reaches SMTP that the guard did not pass on facts read at most one batch
  (≤ ``batch`` messages) and at most ``FRESH_SECONDS`` before it goes;
- a run in ``held`` or ``halted`` sends nothing; ``sealbill run approve`` / ``sealbill resume``
  are the only ways forward, and both are recorded; a run halted or paused by another sender
  or an operator stops this sender before its next batch, within ``FRESH_SECONDS``;
- the canary slice is sent before any other message, and the rest goes only if the canary did
  not fail systematically (N of M, or the message itself refused: :mod:`send_checks`);
- SMTP is given only the recipients of the message not yet delivered nor bounced (a subset of
  those the guard judged); a refusal of the *session* (relay or configuration) pauses the run
  (``smtp_session``) without charging the message (:mod:`sealbill.pipeline.delivery.outcome`);
- after a crash the rows left in ``sending`` are sent again with their Message-ID: **at most
  one batch per sender process may arrive twice**, identical — the messages of the batch SMTP
  accepted since the sender last wrote outcomes (≤ ``batch``); everything else is sent once,
  and nothing is lost;
- when :func:`send_run` returns, every message SMTP accepted has its ledger row;
- a sender never lists the whole run: it walks its rows by id a page (``PAGE_BATCHES``
  batches) at a time, so its memory does not grow with the run;
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
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.engine import Engine

from sealbill.domain import guard
from sealbill.domain import recipient_outcomes as rcpts
from sealbill.domain.identifiers import IdentifierSearch
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import Outcome, SendResult
from sealbill.memory import give_back
from sealbill.pipeline.delivery import compose as composer
from sealbill.pipeline.delivery import examine as reader
from sealbill.pipeline.delivery import seal_checks
from sealbill.pipeline.delivery.identifier_search import AutomatonSearch
from sealbill.pipeline.delivery.pending import Attempt, OutcomePolicy, SenderConnection
from sealbill.pipeline.delivery.send_ahead import Ahead, prompt_switches
from sealbill.pipeline.delivery.send_checks import check_canary, retryable_left
from sealbill.pipeline.delivery.send_forked import send_forked
from sealbill.pipeline.delivery.send_judging import Entry, Judge
from sealbill.pipeline.delivery.send_judging import Prepared as JudgedMessage
from sealbill.pipeline.delivery.send_settings import SendOptions as SendOptions
from sealbill.pipeline.delivery.send_settings import SendReport as SendReport
from sealbill.store.delivery import alerts, outbox_runs, switches
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import plans as plan_store
from sealbill.store.delivery.identifiers import identifier_entries
from sealbill.store.delivery.send_lock import run_lock
from sealbill.store.parties import address_rules

SENDABLE_RUN = ("approved", "sending", "paused")  # paused: a relay fault, fixed since
KILL_ENV = "SEALBILL_TEST_KILL_AT"  # test hook: "<n>:<phase>" -> SIGKILL at the n-th message
FRESH_SECONDS = 1.0  # a message goes at most this long after the guard's fresh read for it
PAGE_BATCHES = 10  # a sender lists its rows this many batches at a time


Gathered = tuple[box.OutboxItem, composer.Gathered | Exception]  # a message, its inputs


class SendError(RuntimeError):
    """The run cannot be sent now (held, halted, not planned)."""


class Transport(Protocol):
    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult: ...
    def close(self) -> None: ...


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
        if index is None:  # streamed into the automaton: no list of the run's identifiers
            with engine.connect() as conn:
                index = AutomatonSearch.from_entries(identifier_entries(conn, org_id, run_id))
        self.index = index
        self.part = part  # (k, n): this sender owns the rows whose id is k modulo n
        # What exists now (the identifier index, the engine, modules) lives for the whole
        # send: moved out of the collector's generations, so that the collections the
        # per-message garbage triggers do not walk it again each time (measured: 10-20 % of
        # the sender's CPU on 10,000 messages).
        gc.collect()
        gc.freeze()
        self.failures_in_a_row = 0
        self.given = 0  # messages given to SMTP by this sender (the test hook counts them)
        # The address policy is configuration (the allow-list may name thousands of domains):
        # read once per sender; the facts it is applied to are read fresh for each message.
        with engine.begin() as conn:
            address_policy = address_rules.policy_for(conn, org_id)
        self.judge = Judge(org_id, run_id, options, self.report, self.index, address_policy)
        self.kill_at = _kill_point()
        self.db = SenderConnection(
            OutcomePolicy(org_id, options.max_attempts,
                          (options.backoff_seconds, options.backoff_max_seconds)), on_progress)

    def phase(self, canary: bool | None) -> str | None:
        """Send every due row of the slice; wait for and retry temporary failures.

        On one connection held for the whole phase, opened here (a forked sender opens its
        own after the fork). Whatever ends the phase (the slice done, a stop, an exception),
        the outcomes of its last batch are recorded before it returns or raises."""
        with self.db.held(self.engine), prompt_switches():
            return self._send_slice(canary)

    def _send_slice(self, canary: bool | None) -> str | None:
        """Passes over the slice's rows, a page at a time (memory does not grow with the run):
        each page's due rows are sent in batches; a pass that sent something is followed by
        another (failures due again), else the sender waits for the earliest retry."""
        while True:
            sent_any, wake, stopped = self._pass(canary)
            if stopped:
                return stopped
            if sent_any:
                continue
            if wake is None or not self.options.wait_for_retries:
                return None
            # Nothing waits unrecorded through the sleep (each page's listing wrote the last
            # outcomes already: this keeps the rule from depending on it).
            self.db.flush()
            time.sleep(max(0.0, min((wake - datetime.now(UTC)).total_seconds(),
                                    self.options.backoff_max_seconds)) + 0.01)
            with self.db.write() as conn:
                if switches.is_paused(conn, self.org_id):
                    return "paused"

    def _pass(self, canary: bool | None) -> tuple[bool, datetime | None, str | None]:
        """One walk over the slice's rows by id: (whether any was due, the earliest time a
        temporary failure may be tried again, why the sender stopped)."""
        limit, size = self.options.max_attempts, max(1, self.options.batch)
        after, sent_any, wake = 0, False, None
        while True:
            # Also records the last batch's outcomes: listed again, they would still be sending.
            with self.db.write() as conn:
                rows = box.page(conn, self.org_id, self.run_id, statuses=box.RETRYABLE,
                                after=after, limit=PAGE_BATCHES * size, canary=canary,
                                part=self.part)
            if not rows:
                return sent_any, wake, None
            last = len(rows) < PAGE_BATCHES * size  # a short page: no row after it
            after = rows[-1].outbox_id
            at = datetime.now(UTC)
            due = []
            for r in rows:
                if r.status != "failed_temporary":
                    due.append(r)
                elif r.attempts < limit and r.next_attempt_at is not None:
                    if r.next_attempt_at <= at:
                        due.append(r)
                    elif wake is None or r.next_attempt_at < wake:
                        wake = r.next_attempt_at
            del rows
            entries = self._prepare(due[:size])
            for start in range(0, len(due), size):
                stopped, entries = self.deliver(entries, due[start + size:start + 2 * size])
                if stopped:
                    return sent_any, wake, stopped
            sent_any = sent_any or bool(due)
            del due
            give_back()  # the page's batches are gone: their heap goes back (sealbill.memory)
            if last:
                return sent_any, wake, None

    def deliver(self, entries: list[Entry], following: list[box.OutboxItem]
                ) -> tuple[str | None, list[Entry]]:
        """Claim, judge and send one prepared batch; its outcomes stay pending (see the
        module). The following batch is prepared meanwhile: read now (a read-only snapshot,
        on this thread's connection), built and read back in a thread while this batch's
        messages wait for SMTP (:mod:`sealbill.pipeline.delivery.send_ahead`). Returns why
        the sender stopped, or the following batch prepared (dropped when it stopped)."""
        with Ahead(lambda: self._gather(following), self._prepare_one) as ahead:
            while entries:
                # One transaction: the previous outcomes first (db.write), then the claims.
                with self.db.write() as conn:
                    judged_at = time.monotonic()
                    stopped, go, entries = self.judge.judge(conn, entries, claimed=False)
                if stopped:
                    return stopped, []
                ahead.start()  # after the judging transaction: it holds the write lock
                stopped, again = self._send(go, judged_at)
                if stopped:
                    return stopped, []
                entries = again + entries
            return None, ahead.result()

    def _send(self, go: list[Entry], judged_at: float) -> tuple[str | None, list[Entry]]:
        """SMTP for each claimed and judged message, in order, each at most FRESH_SECONDS
        after its fresh read (the rest judged again when the batch took longer). Returns why
        it stopped, and the messages released to be judged again."""
        queue, again = list(go), list[Entry]()
        just_judged = True  # the first message after a judgment goes, however long it took
        while queue:
            if not just_judged and time.monotonic() - judged_at > FRESH_SECONDS:
                with self.db.write() as conn:  # also records the outcomes so far
                    judged_at = time.monotonic()
                    stopped, queue, later = self.judge.judge(conn, queue, claimed=True)
                again, just_judged = later + again, True
                if stopped:
                    return stopped, []
                continue
            just_judged = False
            entry = queue.pop(0)
            prepared = entry.prepared
            assert prepared is not None
            self.given += 1
            self._maybe_die(self.given, "claimed")
            outgoing = prepared.composed.outgoing
            # only the recipients not yet delivered nor bounced: a subset of what was judged
            result = self.transport.send(outgoing.mail_from, prepared.rcpt_to, outgoing.data)
            self._maybe_die(self.given, "smtp_done")
            self.db.hold(Attempt(entry.item, prepared.composed, result, prepared.rcpt_to))
            stopped = self._breaker(result)
            if stopped:
                self.db.release([e.item for e in queue])
                if stopped == "smtp_failing":
                    with self.db.write() as conn:  # with the outcomes of the batch so far
                        alerts.record(conn, self.org_id, cause="smtp_failing",
                                      run_id=self.run_id,
                                      message=f"{self.failures_in_a_row} SMTP failures in a "
                                              "row", evidence={"last": result.detail})
                return stopped, []
        return None, again

    def _prepare(self, items: list[box.OutboxItem]) -> list[Entry]:
        """Each message and the guard's reading of its bytes — or why it cannot be built (a
        refusal: recorded as a violation when its turn comes, the run halted). Nothing here
        writes or takes the write lock: the batch's reads run in one read-only snapshot, the
        rest is computation, so several senders do it side by side. A database error is not
        a refusal: it propagates before anything of the batch was claimed (the previous
        outcomes are then recorded by phase())."""
        return [self._prepare_one(found) for found in self._gather(items)]

    def _gather(self, items: list[box.OutboxItem]) -> list[Gathered]:
        """What each message is built from, read in one read-only snapshot."""
        if not items:
            return []
        with self.db.read() as conn:
            gathered = composer.gather_many(conn, self.org_id, items)
        return list(zip(items, gathered, strict=True))

    def _prepare_one(self, found: Gathered) -> Entry:
        """One message built and read back: computation only (no database, no counter of the
        sender), so it may run in the thread that prepares the next batch."""
        item, gathered = found
        try:
            if isinstance(gathered, Exception):
                raise gathered
            composed = composer.build(gathered, item, self.signer)
        except Exception as exc:
            return Entry(item, None, (guard.Violation(
                "build", f"cannot build the message: {exc}", {"error": type(exc).__name__}),))
        started = time.thread_time()
        rcpt_now = rcpts.pending(composed.outgoing.rcpt_to, item.outcomes)
        settled = frozenset(k for k, v in item.outcomes.items()
                            if v.get("state") in rcpts.SETTLED)
        if not rcpt_now:
            return Entry(item, None, (guard.Violation(
                "build", "every recipient of this message is already delivered or bounced: "
                "nothing to send", {"outcomes": dict(item.outcomes)}),))
        examined = reader.examine(guard.Outgoing(composed.outgoing.data, rcpt_now))
        return Entry(item, JudgedMessage(composed, examined, time.thread_time() - started,
                                         rcpt_now, settled))

    def _breaker(self, result: SendResult) -> str | None:
        if result.outcome is Outcome.SESSION:
            return "smtp_session"  # recorded with the pending outcome: the run is paused
        self.failures_in_a_row = 0 if result.outcome is Outcome.SENT else (
            self.failures_in_a_row + 1)
        if self.failures_in_a_row >= self.options.max_consecutive_failures:
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
    stop before their next batch (they read the run's status in every claiming
    transaction). A crash leaves at most one batch per sender in ``sending``.
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
                give_back()  # the canary's batches: not inherited by the senders
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
            report.counts = outbox_runs.counts(conn, org_id, run_id)
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


