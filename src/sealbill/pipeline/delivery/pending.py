"""A sender's database connection, held for a whole phase, and the outcome not written yet.

Each transaction through ``engine.begin()`` checks a connection out of the pool and back in;
for a sender that runs two or three small transactions per message, that was about a seventh
of its CPU. A sender therefore holds one connection for a whole phase of the send, and runs
its transactions on it (:meth:`SenderConnection.write`, :meth:`SenderConnection.read`).

It also saves a write transaction per message: what SMTP answered for message k (an
:class:`Attempt`) is kept *pending* and written as the first statements of the next write
transaction, the one that claims message k + 1 (on SQLite, one writer at a time: one lock wait
per message less between parallel senders) — its ledger row as the *last* statement of that
transaction: on PostgreSQL a ledger append holds the organization's chain lock until commit,
and the claim, the fresh read and the verdict of k + 1 need not be inside it.

Invariants:
- at most one attempt is pending (a sender sends one message at a time);
- a pending attempt's state is written before anything else in the next write transaction, so
  that transaction reads the state it left (a contact it flagged as bounced, its row ``sent``);
  its ledger row is appended in the same transaction, after the rest (``sent`` and its ledger
  row still commit together);
- it stops being pending only once the transaction that wrote it has committed: a transaction
  that fails or rolls back leaves it pending, for the next write or :meth:`flush`;
- the sender flushes before it returns, raises or waits (see
:mod:`sealbill.pipeline.delivery.send`):
  until then the message is in ``sending``, and a crash makes it be sent again with its
  Message-ID, as a crash between SMTP and the old separate outcome transaction did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from sealbill.mail.smtp import SendResult
from sealbill.pipeline.delivery import compose as composer
from sealbill.pipeline.delivery.outcome import record_state
from sealbill.store.db import read_transaction_on
from sealbill.store.delivery import ledger
from sealbill.store.delivery import outbox as box


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
    """One connection for a sender's phase, and the attempt it has not recorded yet."""

    def __init__(self, policy: OutcomePolicy,
                 on_recorded: Callable[[int], None] | None = None) -> None:
        self.policy = policy
        self.on_recorded = on_recorded  # called (outside any transaction) with 1 per outcome
        self.pending: Attempt | None = None
        self._conn: Connection | None = None

    @contextmanager
    def held(self, engine: Engine) -> Iterator[None]:
        """Hold one connection of ``engine`` for the block (opened here: a forked sender must
        open its own after the fork). Whatever ends the block — its end, a return, an
        exception — the pending attempt is recorded before the connection is closed."""
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
        if self.pending is not None:
            raise RuntimeError("an earlier attempt is still unrecorded")
        self.pending = attempt

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction that begins by recording the pending attempt, if any.

        Committed when the block ends (a ``return`` in it too); an exception rolls all of it
        back, the pending attempt included, which then stays pending."""
        pending = self.pending
        with self.conn.begin():
            entry = self._record(pending) if pending is not None else None
            yield self.conn
            if entry is not None:  # last: the chain lock (PostgreSQL) is held until commit
                ledger.append(self.conn, self.policy.org_id, entry)
        if pending is not None:
            self.pending = None
            if self.on_recorded is not None:
                # after the commit: a callback may use other connections (SQLite: the lock)
                self.on_recorded(1)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (on SQLite: no write lock taken nor waited for)."""
        with read_transaction_on(self.conn) as conn:
            yield conn

    def flush(self) -> None:
        """Record the pending attempt now, in a transaction of its own (nothing if none)."""
        if self.pending is not None:
            with self.write():
                pass

    def _record(self, attempt: Attempt) -> ledger.LedgerEntry | None:
        policy = self.policy
        return record_state(self.conn, policy.org_id, attempt.item, attempt.composed,
                            attempt.result, max_attempts=policy.max_attempts,
                            backoff=policy.backoff, rcpt_to=attempt.rcpt_to)
