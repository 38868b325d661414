"""The delivery ledger: one append-only row per message accepted by SMTP, hash-chained per org.

Each row records who received what about whom: the Message-ID, the run, the account (the data
subject), the document (an invoice or a credit note, ``document_kind``), the recipients, the
categories of personal data disclosed, the digests of the attachment and body, and the times.
The incident tooling computes blast radius from this table alone.

Invariants:
- one row per acceptance: a message accepted for some recipients, then (a retry) for the
  others, has one row per acceptance (``part``), each listing exactly the recipients that
  accepted it then;
- rows are only ever inserted (by :func:`append` / :func:`append_many`, in the transaction that
  marks the outbox rows ``sent``); nothing in sealbill updates or deletes them;
- per organization, ``seq`` runs 1, 2, 3... without gaps, and ``row_hash`` is the SHA-256 of
  the row's canonical content (sorted-key JSON, UTC ISO times) *including* ``prev_hash``, the
  previous row's ``row_hash`` (64 zeros for the first). Appends of one organization are
  serialized (PostgreSQL advisory transaction lock; SQLite's single writer);
- each row is sealed (``seal``, ``seal_key_id``: HMAC over organization, seq and row_hash with
  the keyring's key, :mod:`sealbill.store.chain`), and each appending transaction checkpoints
  the chain's head outside the database;
- :func:`verify` recomputes the chain and also checks that every outbox row marked ``sent``
  has its ledger row: an edit, a deletion, a reordering, a row edited and re-hashed (with the
  rest of the chain recomputed after it), a row appended with a valid hash, and a truncated
  tail (against the checkpoints) are reported.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.seals import Check
from sealbill.keys import for_connection
from sealbill.store import chain, stage_events
from sealbill.store.db import is_postgres
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.schema import delivery_ledger, outbox

GENESIS = "0" * 64
CHAIN = "delivery_ledger"
_LOCK_NAMESPACE = 0x5EA1  # advisory lock keys: (namespace, org id)
CONTENT_FIELDS = ("organization_id", "seq", "message_id", "run_id", "account_id",
                  "account_reference", "invoice_id", "invoice_number", "recipients",
                  "data_categories", "attachment_sha256", "body_sha256", "queued_at",
                  "sent_at", "prev_hash", "part", "document_kind")


@dataclass(frozen=True)
class LedgerEntry:
    message_id: str
    run_id: int | None
    account_id: int
    account_reference: str
    invoice_id: int
    invoice_number: str
    recipients: Sequence[Mapping[str, Any]]
    data_categories: Sequence[str]
    attachment_sha256: str
    body_sha256: str
    queued_at: datetime
    sent_at: datetime
    part: int = 1  # > 1: the rest of a message accepted earlier for some recipients
    document_kind: str = "invoice"  # or "credit_note": what the message carried


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("ledger times are timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_CONTENT = operator.itemgetter(*CONTENT_FIELDS)


def row_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 of the row's canonical content: ``_JSON`` of its :data:`CONTENT_FIELDS`, the
    two times written by :func:`_iso`."""
    return values_hash(_CONTENT(content))


def values_hash(values: Sequence[Any]) -> str:
    """:func:`row_hash` of a row whose :data:`CONTENT_FIELDS` come first, in that order (the
    verify walk reads them so; items after them are not read).

    The whole object is written by one call of ``_JSON`` (its C encoder: a layout per field
    in Python, as ``seals.Shape`` does, measured slower here — two lists a row)."""
    canonical = dict(zip(CONTENT_FIELDS, values, strict=False))  # a walk row: longer
    canonical["queued_at"] = _time(canonical["queued_at"])
    canonical["sent_at"] = _time(canonical["sent_at"])
    return hashlib.sha256(_JSON.encode(canonical).encode("utf-8")).hexdigest()


def _time(value: datetime) -> str:
    """:func:`_iso` (a UTC datetime, the usual read, written at once)."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value.isoformat(timespec="microseconds")
    return _iso(value)


_XACT_LOCK = sa.text("SELECT pg_advisory_xact_lock(:ns, :org)")
# Built once: every message sent runs these two.
_HEAD = Prepared(sa.select(delivery_ledger.c.seq, delivery_ledger.c.row_hash)
                 .where(delivery_ledger.c.organization_id == sa.bindparam("org"))
                 .order_by(delivery_ledger.c.seq.desc()).limit(1))
_INSERT = Prepared(sa.insert(delivery_ledger).values(
    {name: sa.bindparam(name) for name in (*CONTENT_FIELDS, "row_hash", "seal",
                                           "seal_key_id")}))


def _lock(conn: Connection, org_id: int) -> None:
    if is_postgres(conn):
        conn.execute(_XACT_LOCK, {"ns": _LOCK_NAMESPACE, "org": org_id})


def append(conn: Connection, org_id: int, entry: LedgerEntry) -> int:
    """Append ``entry`` to the organization's chain; returns its ``seq``."""
    return append_many(conn, org_id, [entry])[-1]


def append_many(conn: Connection, org_id: int, entries: Sequence[LedgerEntry]) -> list[int]:
    """Append ``entries``, in this order, to the organization's chain; returns their ``seq``.

    One lock, one read of the head and one INSERT statement (``executemany``) for all of
    them: each row's ``prev_hash`` is the ``row_hash`` of the one before it in the list, the
    first's the head's; the transaction checkpoints the last head when it commits."""
    if not entries:
        return []
    _lock(conn, org_id)
    last = _HEAD.first(conn, {"org": org_id})
    seq = 0 if last is None else int(last.seq)
    prev = GENESIS if last is None else str(last.row_hash)
    keys = for_connection(conn).keys
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        content = _content(org_id, seq, prev, entry)
        content["row_hash"] = prev = row_hash(content)
        content["seal"], content["seal_key_id"] = keys.seal_chained(
            "ledger_row", org_id, seq, prev)
        rows.append(content)
    _INSERT.run_many(conn, rows)
    chain.note_head(conn, CHAIN, org_id, seq, prev)
    for content, entry in zip(rows, entries, strict=True):
        stage_events.publish(conn, org_id, stage_events.LEDGER_APPENDED, {
            "seq": content["seq"], "message_id": entry.message_id, "run_id": entry.run_id,
            "invoice_id": entry.invoice_id, "invoice_number": entry.invoice_number,
            "account_reference": entry.account_reference,
            "recipients": len(entry.recipients), "sent_at": entry.sent_at})
    return [int(r["seq"]) for r in rows]


def _content(org_id: int, seq: int, prev_hash: str, entry: LedgerEntry) -> dict[str, Any]:
    return {
        "organization_id": org_id, "seq": seq, "message_id": entry.message_id,
        "run_id": entry.run_id, "account_id": entry.account_id,
        "account_reference": entry.account_reference, "invoice_id": entry.invoice_id,
        "invoice_number": entry.invoice_number,
        "recipients": [dict(r) for r in entry.recipients],
        "data_categories": sorted(entry.data_categories),
        "attachment_sha256": entry.attachment_sha256, "body_sha256": entry.body_sha256,
        "queued_at": entry.queued_at, "sent_at": entry.sent_at,
        "prev_hash": prev_hash, "part": entry.part, "document_kind": entry.document_kind,
    }


# The walk's columns: CONTENT_FIELDS first, in that order (what values_hash reads), then:
_WALK = sa.select(*(delivery_ledger.c[name] for name in CONTENT_FIELDS),
                  delivery_ledger.c.row_hash, delivery_ledger.c.seal,
                  delivery_ledger.c.seal_key_id)
_ROW_HASH, _SEAL, _SEAL_KEY_ID = range(len(CONTENT_FIELDS), len(CONTENT_FIELDS) + 3)
_SEQ, _PREV_HASH, _MESSAGE_ID = (CONTENT_FIELDS.index(name)
                                 for name in ("seq", "prev_hash", "message_id"))


@dataclass(frozen=True)
class LedgerReport:
    rows: int
    problems: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(conn: Connection, org_id: int) -> LedgerReport:
    """Recompute the chain of one organization and cross-check it with the outbox."""
    keys = for_connection(conn).keys
    problems: list[dict[str, Any]] = []
    points = chain.checkpoints(conn, CHAIN, org_id)
    wanted = {point.seq for point in points}
    hashes: dict[int, str] = {}  # at the checkpointed places only: memory stays flat
    head = 0
    expected_seq, prev = 1, GENESIS
    rows = conn.execute(_WALK.where(delivery_ledger.c.organization_id == org_id)
                        .order_by(delivery_ledger.c.seq),
                        execution_options={"stream_results": True, "yield_per": 2000})
    count = 0
    for row in rows:  # read by position; a problem described only when there is one
        count += 1
        seq = int(row[_SEQ])
        stored = str(row[_ROW_HASH])
        if seq != expected_seq:
            problems.append({"seq": seq, "problem": "gap", "detail":
                             f"rows {expected_seq}..{seq - 1} are missing (deleted?)"})
        if row[_PREV_HASH] != prev:
            problems.append({"seq": seq, "problem": "chain broken", "detail":
                             "prev_hash is not the previous row's hash (row deleted or "
                             "reordered)"})
        if values_hash(row) != row[_ROW_HASH]:
            problems.append({"seq": seq, "problem": "edited", "detail":
                             "content does not match its row_hash (row edited)",
                             "message_id": row[_MESSAGE_ID]})
        check = keys.check_chained("ledger_row", org_id, seq, stored, row[_SEAL],
                                   row[_SEAL_KEY_ID])
        if check is not Check.VALID:
            problems.append({"seq": seq, "problem": "not sealed", "detail":
                             f"seal {check.value}: this row (or its hash) is not what sealbill "
                             "wrote (edited and re-hashed, or appended)",
                             "message_id": row[_MESSAGE_ID]})
        if seq in wanted:
            hashes[seq] = stored
        head = max(head, seq)
        expected_seq, prev = seq + 1, stored
    missing = conn.execute(
        sa.select(outbox.c.message_id)
        .outerjoin(delivery_ledger, sa.and_(
            delivery_ledger.c.organization_id == outbox.c.organization_id,
            delivery_ledger.c.message_id == outbox.c.message_id))
        .where(outbox.c.organization_id == org_id, outbox.c.status == "sent",
               delivery_ledger.c.id.is_(None))
        .order_by(outbox.c.id)
    ).scalars().all()
    for message_id in missing:
        problems.append({"seq": None, "problem": "missing", "message_id": message_id,
                         "detail": "sent per the outbox but absent from the ledger"})
    problems += chain.against_checkpoints(conn, CHAIN, org_id, hashes, head=head,
                                          points=points)
    return LedgerReport(rows=count, problems=problems)
