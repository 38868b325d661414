"""The accounts a chunk of a usage file names, looked up for that chunk only.

The import used to read the organization's whole map (reference -> id) before its first
line: ~13 MB at 100,000 accounts, held through the import, and its objects, freed at the end,
left the heap's pages pinned by what the import allocated among them (bench/RESULTS.md,
memfloor). Now each chunk's references are found in its raw rows (a regular expression over
the JSONL text, the column of the CSV records) and read in one statement; the previous
chunk's map is reused for the references it has (a file ordered by account shares one with
the next chunk; one ordered by time shares most). A reference the expression misses (escaped
or padded text) is looked up alone, by the careful path (:meth:`ChunkAccounts.one`).

Invariant: at most two chunks' maps are held, whatever the organization's size; a reference
maps to the same id as in the organization's whole map (same rows, same statement's table).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.store.parties.account_lookup import account_ids_of

# The reference's text in a JSONL line as usually written (no escapes: those lines' misses
# go to the careful path, which looks them up alone).
_REFERENCE = re.compile(r'"account_reference"\s*:\s*"([^"\\]*)"')


class ChunkAccounts:
    """reference -> id for one chunk at a time, in the importing transaction ``conn``."""

    def __init__(self, conn: Connection, org_id: int) -> None:
        self.conn, self.org_id = conn, org_id
        # Held by the import's helper thread while it inserts on the same connection: a
        # reference looked up alone (during a parse) waits for the insert instead of running
        # beside it.
        self.lock = threading.Lock()
        self.current: dict[str, int] = {}

    def of(self, raws: list[Any]) -> dict[str, int]:
        """The map of the references ``raws`` (JSONL texts or CSV records) name; it replaces
        the previous chunk's."""
        wanted = set(_references(raws))
        wanted |= {ref.strip() for ref in wanted}  # the careful path strips them
        previous = self.current
        found = {ref: previous[ref] for ref in wanted if ref in previous}
        with self.lock:
            found.update(account_ids_of(self.conn, self.org_id, wanted.difference(found)))
        self.current = found
        return found

    def one(self, reference: str) -> int | None:
        """A reference not in the chunk's map (the expression missed it), looked up alone."""
        with self.lock:
            return account_ids_of(self.conn, self.org_id, (reference,)).get(reference)


def _references(raws: list[Any]) -> list[str]:
    if raws and isinstance(raws[0], str):  # JSONL: one scan of the chunk's text
        return _REFERENCE.findall("".join(raws))
    found = (raw.get("account_reference") for raw in raws)  # CSV records
    return [ref for ref in found if isinstance(ref, str)]
