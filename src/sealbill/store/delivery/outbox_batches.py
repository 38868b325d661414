"""The outbox's per-message statements, run for a whole batch of a sender at once.

A sender judges and records up to 100 messages per write transaction
(:mod:`sealbill.pipeline.delivery.send_judging`, :mod:`sealbill.pipeline.delivery.pending`).
On PostgreSQL each statement is a round trip to the server; run one message after the other,
the guard's fresh read, the claim, the (invoice, recipient) claims and the ``sent`` mark cost
about five round trips a message. Here each is run for the whole batch in one pipelined
``executemany`` (:meth:`~sealbill.store.delivery.prepared.Prepared.rows_many`,
:meth:`~sealbill.store.delivery.prepared.Prepared.run_many`): the same statements, the same
parameters, the same results, one round trip a batch. On SQLite (in process) they run one
after the other as before.

Invariants:
- each statement is the one the single-message function runs (:mod:`outbox`), executed once
  per message, in the batch's order (on PostgreSQL the three writes are one statement a
  batch instead, below): what is written and read is what the messages one by one wrote and
  read — except that a read of the batch runs before the batch's own writes
  (the caller accounts for those: :mod:`sealbill.pipeline.delivery.send_claims`);
- a claim is still a compare-and-set on (status, attempts) per message, and the result says
  which messages were claimed;
- on PostgreSQL a pair another transaction holds is skipped, not an error, and reported per
  message (the unique constraint waits for the other transaction to end first).

On PostgreSQL the writes go further: the claim, the (invoice, recipient) claims and the
``sent`` marks are each **one statement a batch** (the batch's values as arrays, ``UPDATE …
FROM unnest(…)``, ``INSERT … SELECT … FROM unnest(…)``), which saves the server one execution
a message and the client one set of parameters a message. Each row is still judged on its
own: a claim updates an outbox row only while its (status, attempts) are those it was listed
with (under concurrent change PostgreSQL re-checks the row's condition against its newest
version), and the ids updated or inserted come back, so each message learns whether *it* was
claimed, and which of *its* pairs it took. A batch names an outbox row once (refused
otherwise: a row joined twice would be updated once).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from sealbill.domain.guard import DEFAULT_RECIPIENT_CAP
from sealbill.store.db import is_postgres, not_indexed
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import outbox, outbox_recipients
from sealbill.store.types import UtcDateTime

_CLAIM_RETURNING = Prepared(box.CLAIM.returning(outbox.c.id))
_SENT = Prepared(box.SENT)
_P = sa.bindparam


def _unnest(name: str, **columns: Any) -> Any:
    """The rows of a batch, from one array parameter per column (``unnest(:a, :b) AS
    name(a, b)``): one statement for the whole batch, whatever its size."""
    arrays = [_P(column, type_=postgresql.ARRAY(type_)) for column, type_ in columns.items()]
    return sa.func.unnest(*arrays).table_valued(
        *(sa.column(column, type_) for column, type_ in columns.items())
    ).render_derived(name=name)


def _the_batch_rows() -> Any:
    """The outbox rows of the batch (its ``ids`` array), found by primary key whatever the
    join's plan: without it PostgreSQL, planning on the statistics of an outbox analyzed
    empty, hashed every row of the organization for each batch (O(n²) a run; seen with
    ``auto_explain``). The organization is taken out of the index choice (:func:`not_indexed`)
    for the same reason."""
    return sa.and_(outbox.c.id == sa.any_(_P("ids", type_=postgresql.ARRAY(sa.BigInteger))),
                   not_indexed(outbox.c.organization_id) == _P("org"))


# PostgreSQL: the claim of a batch, a compare-and-set per row (box.CLAIM's condition and values).
_LISTED = _unnest("listed", ids=sa.BigInteger, statuses=sa.String, attempts=sa.Integer)
_CLAIM_ALL = Prepared(
    sa.update(outbox).where(_the_batch_rows(),
                            outbox.c.id == _LISTED.c.ids,
                            outbox.c.status == _LISTED.c.statuses,
                            outbox.c.attempts == _LISTED.c.attempts)
    .values(status="sending", attempts=outbox.c.attempts + 1, updated_at=_P("at"),
            next_attempt_at=None)
    .returning(outbox.c.id))
# PostgreSQL: the sent marks of a batch (box.SENT's values, each row its own time).
_ACCEPTED = _unnest("accepted", ids=sa.BigInteger, ats=UtcDateTime)
_SENT_ALL = Prepared(
    sa.update(outbox).where(_the_batch_rows(), outbox.c.id == _ACCEPTED.c.ids)
    .values(status="sent", sent_at=_ACCEPTED.c.ats, last_error=None,
            updated_at=_ACCEPTED.c.ats))
# PostgreSQL: the (invoice, recipient) claims of a batch, in the batch's order; a pair another
# transaction holds (or an earlier row of the batch took) is skipped, and the pairs inserted
# come back.
_PAIRS = _unnest("pairs", run_ids=sa.BigInteger, outbox_ids=sa.BigInteger,
                 invoice_ids=sa.BigInteger, contact_ids=sa.BigInteger, emails=sa.String)
_TAKE_ALL = Prepared(
    postgresql.insert(outbox_recipients).from_select(
        ["organization_id", "run_id", "outbox_id", "invoice_id", "contact_id", "email",
         "created_at"],
        sa.select(_P("org", type_=sa.BigInteger), _PAIRS.c.run_ids, _PAIRS.c.outbox_ids,
                  _PAIRS.c.invoice_ids, _PAIRS.c.contact_ids, _PAIRS.c.emails,
                  _P("at", type_=UtcDateTime)))
    .on_conflict_do_nothing(index_elements=["run_id", "invoice_id", "contact_id"])
    .returning(outbox_recipients.c.outbox_id, outbox_recipients.c.contact_id))


def _once_each(outbox_ids: Sequence[int]) -> list[int]:
    if len(set(outbox_ids)) != len(outbox_ids):
        raise ValueError("a batch names each outbox row once")
    return list(outbox_ids)


def claim_many(conn: Connection, org_id: int, items: Sequence[box.OutboxItem]) -> list[bool]:
    """:func:`outbox.claim` for each item, in order: whether each was claimed (``sending``,
    attempts + 1; not when its row changed since it was listed)."""
    at = box.now()
    ids = _once_each([item.outbox_id for item in items])
    if is_postgres(conn):
        claimed = {int(row.id) for row in _CLAIM_ALL.rows(conn, {
            "org": org_id, "ids": ids, "statuses": [item.status for item in items],
            "attempts": [item.attempts for item in items], "at": at})}
        return [outbox_id in claimed for outbox_id in ids]
    found = _CLAIM_RETURNING.rows_many(conn, [
        {"org": org_id, "outbox": item.outbox_id, "from_status": item.status,
         "from_attempts": item.attempts, "at": at} for item in items])
    return [bool(rows) for rows in found]


def send_facts_many(conn: Connection, org_id: int, items: Sequence[box.OutboxItem],
                    cap: int = DEFAULT_RECIPIENT_CAP) -> list[box.SendFacts]:
    """:func:`outbox.send_facts` for each item, in order: its two statements run for the
    whole batch (the per-contact read once per recipient count in the batch)."""
    params = [box.facts_params(org_id, item) for item in items]
    rows = box.FACTS_ONCE.rows_many(conn, params)
    per_contact: list[list[Any]] = [[] for _ in items]
    by_count: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        by_count.setdefault(max(1, len(item.recipients)), []).append(i)
    for count, indexes in by_count.items():
        found = box.contact_rows(count).rows_many(conn, [params[i] for i in indexes])
        for i, contact_rows in zip(indexes, found, strict=True):
            per_contact[i] = contact_rows
    return [box.facts_of(item, row[0] if row else None, contacts, cap)
            for item, row, contacts in zip(items, rows, per_contact, strict=True)]


def take_claims_many(conn: Connection, org_id: int,
                     wanted: Sequence[tuple[box.OutboxItem, frozenset[int]]]) -> list[set[int]]:
    """The (invoice, recipient) pairs of each message but those it holds (``have``), in
    order; per message, the contact ids whose pair another sender holds (PostgreSQL: waited
    for until that sender's transaction ended, then skipped). SQLite's single writer makes
    that race impossible: its claims are plain inserts, and nothing is held elsewhere."""
    at = box.now()
    rows: list[dict[str, Any]] = []
    owners: list[int] = []
    for k, (item, have) in enumerate(wanted):
        mine = box.claim_rows(org_id, item, have, at)
        rows += mine
        owners += [k] * len(mine)
    held: list[set[int]] = [set() for _ in wanted]
    if not is_postgres(conn):
        box.INSERT_CLAIMS.run_many(conn, rows)
        return held
    if not rows:
        return held
    _once_each([item.outbox_id for item, _ in wanted])
    taken = {(int(r.outbox_id), int(r.contact_id)) for r in _TAKE_ALL.rows(conn, {
        "org": org_id, "at": at, "run_ids": [r["run_id"] for r in rows],
        "outbox_ids": [r["outbox_id"] for r in rows],
        "invoice_ids": [r["invoice_id"] for r in rows],
        "contact_ids": [r["contact_id"] for r in rows], "emails": [r["email"] for r in rows]})}
    for k, row in zip(owners, rows, strict=True):
        if (row["outbox_id"], row["contact_id"]) not in taken:
            held[k].add(int(row["contact_id"]))
    return held


def drop_claims(conn: Connection, item: box.OutboxItem, contact_ids: Sequence[int]) -> None:
    """Give back pairs ``item`` took in this transaction and will not send now."""
    if contact_ids:
        conn.execute(sa.delete(outbox_recipients).where(
            outbox_recipients.c.outbox_id == item.outbox_id,
            outbox_recipients.c.contact_id.in_(list(contact_ids))))


def mark_sent_many(conn: Connection, org_id: int, sent: Sequence[tuple[int, datetime]]) -> None:
    """Each (outbox id, time accepted) ``sent`` (:data:`outbox.SENT` once per message)."""
    ids = _once_each([outbox_id for outbox_id, _ in sent])
    if is_postgres(conn) and sent:
        _SENT_ALL.run(conn, {"org": org_id, "ids": ids, "ats": [at for _, at in sent]})
        return
    _SENT.run_many(conn, [{"org": org_id, "outbox": outbox_id, "at": at}
                          for outbox_id, at in sent])
