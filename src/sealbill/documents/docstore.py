"""Where rendered documents live, chosen in the configuration; every read checks the digest.

``SEALBILL_DOCUMENT_STORE``:
- ``files`` (default, the embedded setup): the files directory (:class:`FileStore`, as always);
- ``dir:/mnt/sealbill-documents``: a directory shared by every machine (NFS, SMB, a cluster
  file system) — the same immutable, atomically published :class:`FileStore`, at that path;
- ``database``: the documents in the database itself (table ``document_blobs``), for setups
  with nothing else to share.

``SEALBILL_DOCUMENT_SYNC`` (a file store): how a rendered batch's files are made durable before
they are published — ``filesystem`` (one ``syncfs`` a batch; the default on Linux ≥ 5.8) or
``file`` (an fsync per file: choose it for a store on a network file system). See
:mod:`sealbill.documents.filestore`.

``documents.path`` records where each one is: an absolute file path, or ``db:<slug>/<name>``.
:func:`read` takes that and the recorded SHA-256, and refuses bytes that do not match it
(:class:`DocumentDigestError`): a document changed or damaged after rendering is never sent.

Invariants (every store): a document once stored never changes — storing identical bytes
again is a no-op that returns the same location (a retried render job is safe), different
bytes are refused (:class:`ImmutableFileError`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.documents.filestore import (
    SYNC_MODES,
    FileStore,
    FileStoreError,
    ImmutableFileError,
)
from sealbill.store.db import is_postgres
from sealbill.store.schema import document_blobs, organizations

STORE_ENV = "SEALBILL_DOCUMENT_STORE"
SYNC_ENV = "SEALBILL_DOCUMENT_SYNC"
DB_PREFIX = "db:"


class DocumentDigestError(ValueError):
    """A stored document does not match the digest recorded when it was rendered."""


class DocumentStore(Protocol):
    def put(self, org_slug: str, invoice_number: str, kind: str, data: bytes
            ) -> tuple[str | Path, str]:
        """Store ``data``; (location, sha256). Idempotent for identical bytes."""

    def put_many(self, items: Sequence[tuple[str, str, str, bytes]]
                 ) -> Sequence[tuple[str | Path, str]]:
        """``put`` of each (org slug, invoice number, kind, data), in order."""


class DatabaseStore:
    """Documents as rows of ``document_blobs`` (one transaction per document)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def location(org_slug: str, invoice_number: str, kind: str) -> str:
        path = FileStore("/").path_for(org_slug, invoice_number, kind)  # same checks, names
        return f"{DB_PREFIX}{org_slug}/{path.name}"

    def put(self, org_slug: str, invoice_number: str, kind: str, data: bytes
            ) -> tuple[str, str]:
        location = self.location(org_slug, invoice_number, kind)
        digest = hashlib.sha256(data).hexdigest()
        with self.engine.begin() as conn:
            org_id = conn.execute(sa.select(organizations.c.id).where(
                organizations.c.slug == org_slug)).scalar_one()
            stored = self._digest(conn, location)
            if stored is None:
                conn.execute(sa.insert(document_blobs).values(
                    organization_id=org_id, location=location, sha256=digest, data=data,
                    created_at=datetime.now(UTC)))
                return location, digest
        if stored != digest:
            raise ImmutableFileError(f"{location} already holds different content "
                                     f"(sha256 {stored}, new {digest})")
        return location, digest

    def put_many(self, items: Sequence[tuple[str, str, str, bytes]]
                 ) -> list[tuple[str | Path, str]]:
        """``put`` of each item in turn (each its own transaction, as ``put``)."""
        return [self.put(*item) for item in items]

    @staticmethod
    def _digest(conn: Connection, location: str) -> str | None:
        found = conn.execute(sa.select(document_blobs.c.sha256).where(
            document_blobs.c.location == location)).scalar()
        return None if found is None else str(found)


def store_for(engine: Engine, files_dir: Path) -> DocumentStore:
    """The store the configuration names (see the module); ``files_dir`` for ``files``."""
    choice = os.environ.get(STORE_ENV, "files").strip()
    sync = os.environ.get(SYNC_ENV, "").strip() or None
    if sync is not None and sync not in SYNC_MODES:
        raise FileStoreError(f"{SYNC_ENV}: expected {' or '.join(SYNC_MODES)}, got {sync!r}")
    if choice in ("", "files"):
        return FileStore(Path(files_dir).resolve(), sync)  # absolute: any cwd finds them
    if choice.startswith("dir:") and len(choice) > 4:
        return FileStore(Path(choice[4:]).expanduser().resolve(), sync)
    if choice == "database":
        if not is_postgres(engine):
            raise FileStoreError(f"{STORE_ENV}=database needs PostgreSQL (on SQLite the "
                                 "documents stay in the files directory)")
        return DatabaseStore(engine)
    raise FileStoreError(f"{STORE_ENV}: expected files, dir:<path> or database, "
                         f"got {choice!r}")


def read(conn: Connection, location: str, sha256: str) -> bytes:
    """The document at ``location`` (a path or ``db:...``), checked against ``sha256``."""
    if location.startswith(DB_PREFIX):
        data = conn.execute(sa.select(document_blobs.c.data).where(
            document_blobs.c.location == location)).scalar()
        if data is None:
            raise DocumentDigestError(f"{location} is missing from the database")
        data = bytes(data)
    else:
        with open(location, "rb", buffering=0) as file:  # unbuffered: one read, no copy
            data = file.readall()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DocumentDigestError(f"{location} does not match its recorded sha256")
    return data

