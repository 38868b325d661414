"""The contact history as an append-only, hash-chained, sealed log (``contact_events``).

Every change to a contact or a link (added, address changed, linked, verified, pending,
revoked, bounced, verification mails) is appended here by :func:`append`, in the transaction
that makes the change — it is the only writer of ``contact_events``.

Each row: ``seq`` (1, 2, 3... per organization), ``prev_hash`` (the previous row's
``row_hash``; 64 zeros first), ``row_hash`` = SHA-256 of the canonical encoding
(``domain/seals.encode("contact_event", ...)``) of :data:`EVENT_FIELDS`, and a seal over
(organization, seq, row_hash). Appends of one organization are serialized (PostgreSQL advisory
transaction lock; SQLite's single writer). The head is checkpointed outside the database
(:mod:`sealbill.store.chain`).

:func:`verify` (``sealbill contacts verify-log``) reports: a row whose content no longer
matches its hash (``edited``), a row whose seal is missing, from an unknown key or wrong
(``forged``), a row outside the chain (``unchained``), missing places (``deleted``), a broken
link between rows (``chain broken``), a row whose id is out of order with its place
(``re-inserted``: deleted and written back), and a tail shorter than a checkpoint
(``truncated``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sealbill.domain.seals import (
    EVENT_FIELDS,
    Check,
    check_event,
    event_hash,
    event_values_hash,
)
from sealbill.keys import for_connection
from sealbill.store import chain
from sealbill.store.db import is_postgres
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import contact_events

CHAIN = "contact_events"
LINK_EVENTS = ("linked", "verified", "pending", "revoked")  # the events that set a link's status
_LOCK_NAMESPACE = 0x5EA2
_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:ns, :org)")


row_hash = event_hash


_HEAD = Prepared(sa.select(contact_events.c.seq, contact_events.c.row_hash)
                 .where(contact_events.c.organization_id == sa.bindparam("org"),
                        contact_events.c.seq.is_not(None))
                 .order_by(contact_events.c.seq.desc()).limit(1))
_INSERT = Prepared(sa.insert(contact_events).values(
    {name: sa.bindparam(name, type_=contact_events.c[name].type)
     for name in (*EVENT_FIELDS, "row_hash", "seal", "seal_key_id")}))


def append(conn: Connection, org_id: int, contact_id: int, event: str, actor: str,
           at: datetime, **extra: Any) -> int:
    """Append one event (``extra``: account_id, role, method, reason, old/new value).

    The head read at the first append of a transaction (under the lock) is kept for the rest
    of it (:func:`sealbill.store.chain.transaction_head`): an import of a thousand accounts
    reads it once."""
    return append_many(conn, org_id, [{"contact_id": contact_id, "event": event,
                                       "actor": actor, "at": at, **extra}])


def append_many(conn: Connection, org_id: int, events: Sequence[Mapping[str, Any]]) -> int:
    """Append events in the order given (each: contact_id, event, actor, at and the extras of
    :func:`append`), chained and sealed as :func:`append` chains them, in one statement.
    Returns the new head's seq."""
    keyring = for_connection(conn)
    head = chain.transaction_head(conn, CHAIN, org_id)
    if head is None:
        if is_postgres(conn):
            conn.execute(_XACT_LOCK, {"ns": _LOCK_NAMESPACE, "org": org_id})
        found = _HEAD.first(conn, {"org": org_id})
        head = (0, chain.GENESIS) if found is None else (int(found.seq), str(found.row_hash))
    if not events:
        return head[0]
    seq, prev = head
    rows = []
    for event in events:
        seq += 1
        row: dict[str, Any] = {name: None for name in EVENT_FIELDS}
        row.update(event)
        row.update(organization_id=org_id, seq=seq, prev_hash=prev)
        row["row_hash"] = prev = row_hash(row)
        row["seal"], row["seal_key_id"] = keyring.keys.seal_chained(
            "contact_event", org_id, seq, row["row_hash"])
        rows.append(row)
    if len(rows) == 1:
        _INSERT.run(conn, rows[0])
    else:
        _INSERT.run_many(conn, rows)
    chain.note_head(conn, CHAIN, org_id, seq, prev)
    return seq


def seal_check(conn: Connection, row: Any) -> Check:
    """The seal of one stored event row, recomputed from its content."""
    return check_event(for_connection(conn).keys, row)


@dataclass(frozen=True)
class LogReport:
    rows: int
    problems: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.problems


STREAM = {"stream_results": True, "yield_per": 2000}  # PostgreSQL: a server-side cursor
# The walk's columns: EVENT_FIELDS first, in that order (what event_values_hash reads), then:
_ID, _ROW_HASH, _SEAL, _SEAL_KEY_ID = range(len(EVENT_FIELDS), len(EVENT_FIELDS) + 4)
_SEQ, _CONTACT_ID, _EVENT, _PREV_HASH = (EVENT_FIELDS.index(name) for name in (
    "seq", "contact_id", "event", "prev_hash"))
_WALK = sa.select(*(contact_events.c[name] for name in EVENT_FIELDS), contact_events.c.id,
                  contact_events.c.row_hash, contact_events.c.seal, contact_events.c.seal_key_id)


def verify(conn: Connection, org_id: int) -> LogReport:
    """Walk the organization's whole log (see the module docstring for what is reported).

    Memory does not grow with the log: rows are streamed (the chained ones by place, then the
    ones outside the chain), and only the hashes at the checkpointed places are kept;
    re-inserted rows are found by a further, descending walk — needed only when an id did not
    grow along the chain: where every row's id is above the previous row's, no row has an id
    newer than a later row's (what :func:`_reinserted` reports).
    Each row is read by position and a problem's description built only when there is one
    (the walk's cost is per row, and a large organization's history has hundreds of
    thousands)."""
    keys = for_connection(conn).keys
    problems: list[dict[str, Any]] = []
    expected, prev = 1, chain.GENESIS
    points = chain.checkpoints(conn, CHAIN, org_id)
    wanted = {point.seq for point in points}
    hashes: dict[int, str] = {}  # at the checkpointed places only
    head = 0
    count = 0
    last_id = 0  # ids only growing along the chain: no row can have been re-inserted
    ids_grow = True
    for row in _walk(conn, org_id, chained=True):
        count += 1
        ids_grow = ids_grow and row[_ID] > last_id
        last_id = row[_ID]
        seq = int(row[_SEQ])
        stored = str(row[_ROW_HASH])
        if seq != expected:
            problems.append({**_where(row), "problem": "deleted", "detail":
                             f"events {expected}..{seq - 1} are missing"})
        if row[_PREV_HASH] != prev:
            problems.append({**_where(row), "problem": "chain broken", "detail":
                             "prev_hash is not the previous event's hash"})
        if event_values_hash(row) != row[_ROW_HASH]:
            problems.append({**_where(row), "problem": "edited", "detail":
                             "content does not match its row_hash"})
        check = keys.check_chained("contact_event", org_id, seq, stored, row[_SEAL],
                                   row[_SEAL_KEY_ID])
        if check is not Check.VALID:
            problems.append({**_where(row), "problem": "forged", "detail":
                             f"seal {check.value}: not written by sealbill with its key"})
        if seq in wanted:
            hashes[seq] = stored
        head = max(head, seq)
        expected, prev = seq + 1, stored
    for row in _walk(conn, org_id, chained=False):
        count += 1
        problems.append({**_where(row), "problem": "unchained", "detail":
                         "an event outside the chain (written around sealbill)"})
    if not ids_grow:
        problems += _reinserted(conn, org_id)
    problems += chain.against_checkpoints(conn, CHAIN, org_id, hashes, head=head,
                                          points=points)
    return LogReport(count, problems)


def _walk(conn: Connection, org_id: int, *, chained: bool) -> Iterable[Row[Any]]:
    """The chained rows by place (the unique (organization, seq) index gives that order; no
    sort of the whole log before the first row), or the rows outside the chain by id."""
    seq = contact_events.c.seq
    where = _WALK.where(contact_events.c.organization_id == org_id)
    query = (where.where(seq.is_not(None)).order_by(seq, contact_events.c.id) if chained
             else where.where(seq.is_(None)).order_by(contact_events.c.id))
    return conn.execute(query, execution_options=STREAM)


def _where(row: Sequence[Any]) -> dict[str, Any]:
    """Which event a problem is about (a row of the walk's columns)."""
    seq = row[_SEQ]
    return {"id": int(row[_ID]), "contact_id": int(row[_CONTACT_ID]), "event": row[_EVENT],
            "seq": None if seq is None else int(seq)}


def _reinserted(conn: Connection, org_id: int) -> list[dict[str, Any]]:
    """Ids grow with the chain; a row whose id is newer than a later row's was deleted and
    written back (with its old content and place). Walks the chain from its end."""
    out: list[dict[str, Any]] = []
    later_min: int | None = None
    rows = conn.execute(
        sa.select(contact_events.c.id, contact_events.c.contact_id, contact_events.c.event,
                  contact_events.c.seq)
        .where(contact_events.c.organization_id == org_id, contact_events.c.seq.is_not(None))
        .order_by(contact_events.c.seq.desc(), contact_events.c.id.desc()),
        execution_options=STREAM)
    for row_id, contact_id, event, seq in rows:
        if later_min is not None and row_id > later_min:
            out.append({"id": int(row_id), "contact_id": int(contact_id), "event": event,
                        "seq": int(seq), "problem": "re-inserted", "detail":
                        "its id is newer than a later event's: deleted and written back"})
        later_min = row_id if later_min is None else min(later_min, row_id)
    return out[::-1]
