"""A sender's database connection, held for a whole phase, and the outcomes not written yet.

Each transaction through ``engine.begin()`` checks a connection out of the pool and back in;
for a sender that runs small transactions for every batch of messages, that was about a
seventh of its CPU. A sender therefore holds one connection for a whole phase of the send, and
runs its transactions on it (:meth:`SenderConnection.write`, :meth:`SenderConnection.read`).

A sender sends a *batch* of messages between two write transactions
(:mod:`sealbill.pipeline.delivery.send`): what SMTP answered for each of them (an
:class:`Attempt`) is kept *pending* and written, all of them together, as the first statements
of the next write transaction — their ledger rows as the *last* statements of that
transaction, in the order SMTP accepted the messages (:func:`~sealbill.store.delivery.ledger.
append_many`: on PostgreSQL a ledger append holds the organization's chain lock until commit).
The messages every recipient accepted at once (the common case) are marked ``sent`` with one
statement for the batch, as their ledger rows are appended with one.
Messages claimed for the batch but not given to SMTP (the batch stopped early) are *released*
in the same transaction: back to the state and attempt count they were claimed from.

Invariants:
- at most one batch of attempts is pending (≤ the batch size, 100 by default);
- the pending attempts' states are written before anything else in the next write
  transaction, so that transaction reads the state they left (a contact flagged as bounced,
  rows ``sent``); their ledger rows are appended in the same transaction, after the rest
  (``sent`` and its ledger row still commit together);
- they stop being pending only once the transaction that wrote them has committed: a
  transaction that fails or rolls back leaves them pending, for the next write or
  :meth:`flush`;
- the sender flushes before it returns, raises or waits (see
  :mod:`sealbill.pipeline.delivery.send`): until then each message of the batch is in
  ``sending``, and a crash makes it be sent again with its Message-ID — so a crash sends at
  most the pending attempts SMTP accepted twice: at most one batch per sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from sealbill.mail.smtp import SendResult
from sealbill.pipeline.delivery import compose as composer
from sealbill.pipeline.delivery.outcome import record_state
from sealbill.store.db import read_transaction_on
from sealbill.store.delivery import ledger
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_batches as batches
from sealbill.store.delivery import outbox_outcomes as outcomes_store


@dataclass(frozen=True)
class Attempt:
    """One message given to SMTP, and what SMTP answered: to be recorded."""

    item: box.OutboxItem
    composed: composer.Composed
    result: SendResult
    rcpt_to: tuple[str, ...] | None = None  # the recipients tried (None: all of the message's)


@dataclass(frozen=True)
class OutcomePolicy:
    """What :func:`~sealbill.pipeline.delivery.outcome.record_state` needs besides the attempt."""

    org_id: int
    max_attempts: int
    backoff: tuple[float, float]  # first delay and cap, in seconds


class SenderConnection:
    """One connection for a sender's phase, and the attempts it has not recorded yet."""

    def __init__(self, policy: OutcomePolicy,
                 on_recorded: Callable[[int], None] | None = None) -> None:
        self.policy = policy
        self.on_recorded = on_recorded  # called (outside any transaction) with the count
        self.pending: list[Attempt] = []
        self.releases: list[box.OutboxItem] = []  # claimed, not given to SMTP: to undo
        self._conn: Connection | None = None

    @contextmanager
    def held(self, engine: Engine) -> Iterator[None]:
        """Hold one connection of ``engine`` for the block (opened here: a forked sender must
        open its own after the fork). Whatever ends the block — its end, a return, an
        exception — the pending attempts are recorded before the connection is closed."""
        with engine.connect() as conn:
            self._conn = conn
            try:
                yield
            finally:
                try:
                    self.flush()
                finally:
                    self._conn = None

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("no connection held: use held()")
        return self._conn

    def hold(self, attempt: Attempt) -> None:
        """Keep ``attempt`` to be written by the next write transaction (or :meth:`flush`)."""
        self.pending.append(attempt)

    def release(self, items: list[box.OutboxItem]) -> None:
        """Claimed but not sent: returned to their claimed-from state by the next write."""
        self.releases.extend(items)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction that begins by recording the pending attempts and releases.

        Committed when the block ends (a ``return`` in it too); an exception rolls all of it
        back, the pending attempts included, which then stay pending."""
        pending, releases = list(self.pending), list(self.releases)
        with self.conn.begin():
            for item in releases:
                outcomes_store.unclaim(self.conn, self.policy.org_id, item)
            sent: list[tuple[int, datetime]] = []
            entries = [e for e in (self._record(a, sent) for a in pending) if e is not None]
            batches.mark_sent_many(self.conn, self.policy.org_id, sent)
            yield self.conn
            if entries:  # last: the chain lock (PostgreSQL) is held until commit
                ledger.append_many(self.conn, self.policy.org_id, entries)
        del self.pending[:len(pending)]
        del self.releases[:len(releases)]
        if pending and self.on_recorded is not None:
            # after the commit: a callback may use other connections (SQLite: the lock)
            self.on_recorded(len(pending))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (on SQLite: no write lock taken nor waited for)."""
        with read_transaction_on(self.conn) as conn:
            yield conn

    def flush(self) -> None:
        """Record the pending attempts now, in a transaction of their own (nothing if none)."""
        if self.pending or self.releases:
            with self.write():
                pass

    def _record(self, attempt: Attempt,
                sent: list[tuple[int, datetime]]) -> ledger.LedgerEntry | None:
        policy = self.policy
        return record_state(self.conn, policy.org_id, attempt.item, attempt.composed,
                            attempt.result, max_attempts=policy.max_attempts,
                            backoff=policy.backoff, sent=sent, rcpt_to=attempt.rcpt_to)
