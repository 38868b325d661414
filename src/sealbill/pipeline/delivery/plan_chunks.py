"""What building a chunk of envelopes reads: the run's next finalized invoices, their
documents' digests, their accounts' verified billing recipients.

Read in the plan's own transaction, a chunk at a time. (Reading them one chunk ahead in a
worker process, while this one writes, was measured on 2026-12-07 and not kept: at 10,000
invoices the reader process spent 0.27-0.30 s of CPU for reads that cost the plan's process
0.08 s less — a cold page cache and its own statements — so the stage's CPU rose 15 % for a
critical path 7 % shorter; see ``bench/RESULTS.md``.)

Invariants: the chunks come in invoice id order, each at most :data:`CHUNK` invoices.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.store.delivery import plans as store
from sealbill.store.parties.records import Recipient

CHUNK = 1000  # invoices built and stored together


@dataclass(frozen=True)
class ChunkFacts:
    """A chunk's invoices (``store.run_invoices`` rows), their documents' digests
    (invoice id -> kind -> sha256) and, for the accounts of the invoices to plan, their
    verified billing recipients (account id -> recipients, by contact id)."""

    invoices: Sequence[Mapping[str, Any]]
    digests: dict[int, dict[str, str]]
    recipients: dict[int, list[Recipient]]

    @property
    def last_id(self) -> int:
        return max(int(inv["id"]) for inv in self.invoices)


Resolver = Callable[[Connection, int, Sequence[int]], Mapping[int, list[Recipient]]]


def read_chunk(conn: Connection, org_id: int, run_id: int, after: int,
               todo: array[int] | None, resolve: Resolver) -> ChunkFacts | None:
    """The run's next chunk of finalized invoices after id ``after`` (None: no more)."""
    invoices = store.run_invoices(conn, org_id, run_id, after=after, limit=CHUNK)
    if not invoices:
        return None
    digests = store.document_digests(conn, org_id, [int(inv["id"]) for inv in invoices])
    accounts = sorted({int(inv["account_id"]) for inv in invoices
                       if todo is None or contains(todo, int(inv["id"]))})
    recipients = dict(resolve(conn, org_id, accounts)) if accounts else {}
    return ChunkFacts(invoices, digests, recipients)


def contains(ids: array[int], wanted: int) -> bool:
    """``wanted`` in the ascending array ``ids``."""
    at = bisect_left(ids, wanted)
    return at < len(ids) and ids[at] == wanted


def chunks(conn: Connection, org_id: int, run_id: int, todo: array[int] | None,
           resolve: Resolver) -> Iterator[ChunkFacts]:
    """The run's chunks in id order."""
    after = 0
    while (facts := read_chunk(conn, org_id, run_id, after, todo, resolve)) is not None:
        yield facts
        if len(facts.invoices) < CHUNK:
            return
        after = facts.last_id
