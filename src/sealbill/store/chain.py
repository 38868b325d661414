"""Sealed hash chains and their checkpoints outside the database.

Two tables are hash chains per organization: ``contact_events``
(:mod:`sealbill.store.parties.contact_log`)
and ``delivery_ledger`` (:mod:`sealbill.store.delivery.ledger`). Each row carries ``seq`` (1, 2,
3...),
``prev_hash``, ``row_hash`` (SHA-256 over its content and ``prev_hash``) and a **seal**: the
HMAC of (organization, seq, row_hash) with the keyring's active key (``domain/seals.py``). A row
edited and re-hashed by someone without the key has a seal that no longer matches; a row
appended with a valid hash has no valid seal.

A chain whose tail was cut is still a valid chain. So each transaction that appends to a chain
also writes, when it commits, a **checkpoint** — (chain, organization, seq, head hash), sealed —
to an append-only file in the keyring directory (``checkpoints/<database>.jsonl``, one line
each, ``O_APPEND``). :func:`against_checkpoints` then reports a chain with fewer rows than a
checkpoint counted, or another row at a checkpointed place.

Invariants and limits:
- the checkpoint is written from SQLAlchemy's ``commit`` event, i.e. just *before* the
  database commits: if that commit then fails, the file names a head the database never had
  and verification reports it (a false alarm, never a missed truncation);
- only the last head per (chain, organization) of a transaction is written; a rolled-back
  transaction writes nothing;
- whoever holds both the key and the database (and the checkpoint file) can rewrite all of
  it: the seal protects against database writes, not against the key's holder.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.seals import Check, checkpoint_fields
from sealbill.keys import Keyring, database_name, for_connection

GENESIS = "0" * 64
_PENDING = "sealbill.pending_heads"
_TXN = "sealbill.pending_heads_transaction"
_LISTENING: weakref.WeakSet[Engine] = weakref.WeakSet()


def note_head(conn: Connection, chain: str, org_id: int, seq: int, head_hash: str) -> None:
    """Remember this transaction's new head of ``chain``; written out when it commits."""
    keyring = for_connection(conn)
    _listen(conn.engine)
    owner = conn.info.get(_TXN)
    if owner is None or owner() is None or owner() is not conn.get_transaction():
        conn.info.pop(_PENDING, None)  # left by a transaction that ended unseen
    pending: dict[tuple[str, int], tuple[int, str, Keyring]] = conn.info.setdefault(_PENDING,
                                                                                    {})
    pending[(chain, org_id)] = (seq, head_hash, keyring)
    conn.info[_TXN] = weakref.ref(conn.get_transaction()) if conn.in_transaction() else None


def transaction_head(conn: Connection, chain: str, org_id: int) -> tuple[int, str] | None:
    """The head this transaction already appended to ``chain`` (so it holds the chain's lock
    and knows the head without reading it), or ``None``."""
    pending = conn.info.get(_PENDING)
    if not pending or (chain, org_id) not in pending:
        return None
    owner = conn.info.get(_TXN)
    if owner is None or owner() is None or owner() is not conn.get_transaction():
        return None  # left by a transaction that ended unseen: never trust it
    seq, head_hash, _ = pending[(chain, org_id)]
    return seq, head_hash


def _listen(engine: Engine) -> None:
    if engine in _LISTENING:
        return
    _LISTENING.add(engine)
    event.listen(engine, "commit", _on_commit)
    event.listen(engine, "rollback", _on_rollback)


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def _on_commit(conn: Connection) -> None:
    pending = conn.info.pop(_PENDING, None)
    if not pending:
        return
    database = database_name(conn)
    for (chain, org_id), (seq, head_hash, keyring) in sorted(pending.items()):
        seal, kid = keyring.keys.seal("checkpoint", checkpoint_fields(chain, org_id, seq,
                                                                      head_hash))
        line = json.dumps({"chain": chain, "organization_id": org_id, "seq": seq,
                           "head_hash": head_hash, "seal": seal, "seal_key_id": kid},
                          sort_keys=True) + "\n"
        path = keyring.checkpoint_file(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: lines never interleave
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    check: Check


def checkpoints(conn: Connection, chain: str, org_id: int) -> list[Checkpoint]:
    """Every checkpoint of (chain, organization) in the file, with its seal's verdict."""
    keyring = for_connection(conn)
    path = keyring.checkpoint_file(database_name(conn))
    if not path.exists():
        return []
    found: list[Checkpoint] = []
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue  # a torn last line: the next checkpoint says the same and more
        if data.get("chain") != chain or data.get("organization_id") != org_id:
            continue
        fields = checkpoint_fields(chain, org_id, int(data["seq"]), str(data["head_hash"]))
        check = keyring.keys.check("checkpoint", fields, data.get("seal"),
                                   data.get("seal_key_id"))
        found.append(Checkpoint(int(data["seq"]), str(data["head_hash"]), check))
    return found


def against_checkpoints(conn: Connection, chain: str, org_id: int,
                        hashes: Mapping[int, str], *, head: int | None = None,
                        points: list[Checkpoint] | None = None) -> list[dict[str, Any]]:
    """Problems of a chain (``hashes``: seq -> row_hash as stored, at least at every
    checkpointed place; ``head``: the last seq, the largest of ``hashes`` if not given)
    against its checkpoints (``points``, read from the file if not given): a tail shorter
    than a checkpoint (truncated), or another row at a checkpointed place."""
    problems: list[dict[str, Any]] = []
    head = max(hashes, default=0) if head is None else head
    for point in checkpoints(conn, chain, org_id) if points is None else points:
        if point.check is not Check.VALID:
            problems.append({"seq": point.seq, "problem": "checkpoint not sealed",
                             "detail": f"a checkpoint line's seal is {point.check.value}"})
        elif point.seq > head:
            problems.append({"seq": point.seq, "problem": "truncated", "detail":
                             f"a checkpoint counted {point.seq} rows; the table has {head} "
                             "(rows cut from the tail)"})
        elif hashes.get(point.seq) != point.head_hash:
            problems.append({"seq": point.seq, "problem": "rewritten", "detail":
                             "the row at a checkpointed place is not the one checkpointed"})
    # a cut tail fails every later checkpoint: report the longest one only
    cut = [p for p in problems if p["problem"] == "truncated"]
    rest = [p for p in problems if p["problem"] != "truncated"]
    return rest + ([max(cut, key=lambda p: int(p["seq"]))] if cut else [])
