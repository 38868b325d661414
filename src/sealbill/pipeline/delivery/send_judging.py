"""The guard's judgment of a batch of messages, in one write transaction of their sender.

:class:`Judge` takes a batch of prepared messages (:class:`Entry`: the outbox row, the bytes
the guard read back, or why the message could not be built) and, in the caller's
transaction: reads the guard's facts fresh from the tables for every message of the batch,
with the kill switch and the run's status (and the rows the seal and policy rules judge),
claims the rows (``sending``, attempts + 1), then for each message in order judges the
examined bytes against its facts (``guard.verdict``), the seal rule (:mod:`seal_checks`) and
the policy rules (:mod:`sealbill.domain.send_policy`); last, it records the (invoice,
recipient) claims of the messages that passed. Each statement runs once per message, all of
them for the batch at once (:mod:`sealbill.store.delivery.outbox_batches`: one round trip a
batch on PostgreSQL). The claims of earlier messages of the batch are seen by the later ones
(:mod:`sealbill.pipeline.delivery.send_claims` adds them to the facts read before them),
exactly as when each message had a transaction of its own; a message's facts are read at
most one batch (≤ 100 messages) and ``send.FRESH_SECONDS`` before it goes.

The same judgment runs again over the claimed messages not sent yet when their fresh read is
older than the sender allows (``claimed=True``: nothing claimed again).

Invariants (what :meth:`Judge.judge` returns: the reason to stop, the messages that may go,
the messages to judge again later):
- a stop (kill switch, run no longer ``sending``), read before the batch is claimed, sends
  nothing of the batch: every message of it claimed and not sent is returned to the state it
  was claimed from;
- the first message of the batch that violates a rule halts the run **if it is the first to
  go**: it is set aside with the evidence and an alert, in this transaction, and nothing more
  of the batch is sent. If messages before it passed, they go first and it is released (back
  to its state before the claim), so that it is judged again — fresh, and first — in the next
  transaction, after their outcomes are written: as when each message was judged just before
  it went. The messages after it are returned to the state they were claimed from. A pair
  another sender took meanwhile (PostgreSQL) is such a violation, of the first message that
  wanted it; the pairs taken by it and the messages after it are given back;
- a message whose row changed since it was listed is not ours to send now: skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sealbill.domain import guard, send_policy
from sealbill.domain.address_policy import AddressPolicy
from sealbill.domain.identifiers import IdentifierSearch
from sealbill.domain.seal_guard import SealEvidence
from sealbill.domain.send_policy import PolicyFacts
from sealbill.pipeline.delivery import compose as composer
from sealbill.pipeline.delivery import seal_checks
from sealbill.pipeline.delivery.send_claims import BatchClaims
from sealbill.pipeline.delivery.send_settings import SendOptions, SendReport
from sealbill.store.delivery import alerts, policy_facts, seal_facts
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_batches as batches
from sealbill.store.delivery import outbox_outcomes as outcomes_store
from sealbill.store.delivery import plans as plan_store


@dataclass(frozen=True)
class Prepared:
    composed: composer.Composed
    examined: guard.Examined
    examine_seconds: float
    rcpt_to: tuple[str, ...]  # the recipients to send to now (not delivered nor bounced yet)
    settled: frozenset[str]


@dataclass(frozen=True)
class Entry:
    """One message of a batch: built and read back, or why it could not be (a violation)."""

    item: box.OutboxItem
    prepared: Prepared | None
    problems: tuple[guard.Violation, ...] = ()


Judged = tuple[str | None, list[Entry], list[Entry]]  # (stop, may go, to judge again later)


class Judge:
    def __init__(self, org_id: int, run_id: int, options: SendOptions, report: SendReport,
                 index: IdentifierSearch, address_policy: AddressPolicy) -> None:
        self.org_id, self.run_id, self.options, self.report = org_id, run_id, options, report
        self.index, self.address_policy = index, address_policy

    def judge(self, conn: Any, entries: list[Entry], *, claimed: bool) -> Judged:
        """Claim (unless ``claimed``) and judge ``entries`` in order (see the module)."""
        policies, evidence = self._batch_facts(conn, entries)
        started = time.thread_time()
        read = batches.send_facts_many(conn, self.org_id, [e.item for e in entries],
                                       self.options.recipient_cap)
        read_seconds = (time.thread_time() - started) / max(1, len(entries))
        stop = next((f.stop for f in read if f.stop is not None), None)
        if stop is not None:  # read before any claim of this batch: nothing of it goes
            if claimed:
                self._release(conn, entries)
            return stop, [], []
        if not claimed:
            taken = batches.claim_many(conn, self.org_id, [e.item for e in entries])
            # a row changed since it was listed is not ours to send now: skipped
            kept = [j for j, ours in enumerate(taken) if ours]
            entries, read = [entries[j] for j in kept], [read[j] for j in kept]
            evidence = [evidence[j] for j in kept]
            self.report.attempted += len(entries)
        passed, have, violations = self._verdicts(conn, entries, read, read_seconds, policies,
                                                  evidence, again=claimed)
        if not claimed and passed:
            refused = self._record_claims(conn, entries[:passed], have)
            if refused is not None:
                passed, violations = refused
        return self._cut(conn, entries, passed, violations)

    def _verdicts(self, conn: Any, entries: list[Entry], read: list[box.SendFacts],
                  read_seconds: float, policies: dict[int, PolicyFacts],
                  evidence: list[SealEvidence], *, again: bool
                  ) -> tuple[int, list[frozenset[int]], list[guard.Violation]]:
        """Judge the messages in order until the first violation: how many passed, the pairs
        each of them held already, and the first one's violations (none: all passed). Each
        message sees the pairs the messages before it take (unless ``again``: judged again,
        they hold theirs already)."""
        seen, have = BatchClaims(), list[frozenset[int]]()
        for j, entry in enumerate(entries):
            item = entry.item
            facts = seen.seen_by(item, read[j])
            violations = list(entry.problems)
            if entry.prepared is not None:
                violations += self._rules(conn, item, entry.prepared, facts, read_seconds,
                                          evidence[j], policies[item.envelope_id], again=again)
            if violations:
                return j, have, violations
            have.append(facts.claimed_by_this_message)
            if not again:
                seen.take(item, facts.claimed_by_this_message)
        return len(entries), have, []

    def _cut(self, conn: Any, entries: list[Entry], passed: int,
             violations: list[guard.Violation]) -> Judged:
        """The batch cut before its first violating message (``entries[passed]``): those
        before it go; it is judged again after their outcomes — or, when it would be the first
        to go, halts the run. The messages after it are released."""
        if passed == len(entries):
            return None, entries, []
        if passed:  # they go first; this one is judged again after their outcomes
            self._release(conn, entries[passed:])
            return None, entries[:passed], entries[passed:]
        self._release(conn, entries[1:])
        self._halt(conn, entries[0].item, violations)
        return "halted", [], []

    def _batch_facts(self, conn: Any, entries: list[Entry]
                     ) -> tuple[dict[int, PolicyFacts], list[SealEvidence]]:
        """The rows the policy and seal rules judge, for the whole batch at once (they do not
        change with the claims this transaction writes; read in it, fresh)."""
        started = time.thread_time()
        policies = policy_facts.read_many(conn, self.org_id,
                                          [e.item.envelope_id for e in entries])
        read_policies = time.thread_time()
        evidence = seal_facts.evidence_many(conn, self.org_id, [
            (e.item.account_id, [c for c, _ in e.item.recipients]) for e in entries])
        sealed = time.thread_time() - read_policies
        self.report.seal_seconds += sealed
        self.report.guard_seconds += sealed + read_policies - started
        return policies, evidence

    def _release(self, conn: Any, entries: list[Entry]) -> None:
        for entry in entries:
            outcomes_store.unclaim(conn, self.org_id, entry.item)

    def _rules(self, conn: Any, item: box.OutboxItem, prepared: Prepared,
               facts: box.SendFacts, fresh_read_seconds: float, evidence: SealEvidence,
               policy: PolicyFacts, *, again: bool) -> list[Any]:
        """The guard's verdict on the examined bytes, the seal rule and the policy rules, in
        that order, every one of them run. Their CPU time is added to the report (the
        guard's: the three, the fresh read and the reading of the bytes once — ``again`` is a
        message judged again because its fresh read grew old; the seal rule's apart) from one
        chain of four clock readings: ``thread_time`` is a system call of a few µs here, and
        a reading per step's start and end cost six."""
        started = time.thread_time()
        violations: list[Any] = list(self._verdict(item, prepared, facts))
        verdict_done = time.thread_time()
        violations += self._sealed(conn, item, prepared, evidence)
        sealed_done = time.thread_time()
        violations += self._policy(item, prepared, policy)
        done = time.thread_time()
        self.report.seal_seconds += sealed_done - verdict_done
        self.report.guard_seconds += (done - started + fresh_read_seconds
                                      + (0.0 if again else prepared.examine_seconds))
        self.report.judged_again += again
        return violations

    def _verdict(self, item: box.OutboxItem, prepared: Prepared,
                 facts: box.SendFacts) -> list[guard.Violation]:
        """The guard's verdict on the examined bytes, against the facts read fresh."""
        return guard.verdict(
            guard.Envelope(item.run_id, item.envelope_id, item.invoice_id, item.account_id,
                           item.recipients, item.attachment_sha256, prepared.settled),
            facts.fresh, prepared.examined, self.index)

    def _sealed(self, conn: Any, item: box.OutboxItem, prepared: Prepared,
                evidence: SealEvidence) -> list[Any]:
        """The seal rule (:mod:`sealbill.pipeline.delivery.seal_checks`)."""
        out = prepared.composed.outgoing
        return seal_checks.message_violations(conn, self.org_id, item.account_id,
                                              item.recipients, out.mail_from, out.rcpt_to,
                                              evidence)

    def _policy(self, item: box.OutboxItem, prepared: Prepared,
                facts: PolicyFacts) -> list[guard.Violation]:
        """The guard's policy rules (address policy, archive, approval), on facts read in this
        transaction."""
        return send_policy.violations(item.account_id, item.recipients, prepared.rcpt_to,
                                      self.address_policy, facts)

    def _record_claims(self, conn: Any, ok: list[Entry], have: list[frozenset[int]]
                       ) -> tuple[int, list[guard.Violation]] | None:
        """Take the (invoice, recipient) pairs of the messages that passed, in one batch.

        On PostgreSQL two senders can pass their fresh reads at the same moment; the unique
        constraint then keeps the second from taking a pair the first holds (``ON CONFLICT
        DO NOTHING``: it waits for the first to commit), which is the guard's rule 4 and halts
        the run like any violation. SQLite's single writer makes that race impossible. Returns
        the first message refused so (its index in ``ok``) and why; the pairs it and the
        messages after it took are given back (they do not go now)."""
        held = batches.take_claims_many(conn, self.org_id, [
            (e.item, mine) for e, mine in zip(ok, have, strict=True)])
        k = next((k for k, elsewhere in enumerate(held) if elsewhere), None)
        if k is None:
            return None
        for entry, mine, elsewhere in zip(ok[k:], have[k:], held[k:], strict=True):
            batches.drop_claims(conn, entry.item, [
                c for c, _ in entry.item.recipients if c not in mine and c not in elsewhere])
        item = ok[k].item
        return k, [guard.Violation("run_limits", "this invoice already went to this recipient "
                                   "(claimed by another sender)",
                                   {"invoice_id": item.invoice_id,
                                    "contact_ids": sorted(held[k])})]

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
