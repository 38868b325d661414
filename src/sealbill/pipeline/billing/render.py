"""Render: every finalized invoice of a run gets its PDF/Factur-X, XML, mail bodies, subject.

Invariants:
- documents are produced once: an invoice that already has its ``documents`` rows is not
  rendered again, so a finalized invoice can never be re-rendered differently;
- the files are stored (durably, a chunk at a time) before their rows are written, and each
  row records the SHA-256 of its file; the delivery stage reads the digests from these rows.
  With a file store the workers write their chunks' files themselves and send back where
  they are and their digests; this process makes a chunk's files durable, publishes them,
  then writes its rows (with the database store, the workers send the documents' bytes and
  this process stores them);
- each invoice is read once, a chunk at a time, and checked before its chunk is rendered: a
  problem stops the rendering there (what was rendered before stays, valid and immutable),
  and the error lists every problem of the run;
- rendering runs in a pool of worker processes, in chunks, with memory flat;
- each invoice's PDF comes from the compiled template, or from Typst when it does not fit
  (or when ``SEALBILL_RENDERER=typst``); :class:`RenderCounts` says how many went which way.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill import settings
from sealbill.documents.docstore import DocumentStore, store_for
from sealbill.documents.filestore import FileStore, discard
from sealbill.documents.mentions import check_renderable
from sealbill.documents.render import (
    FALLBACK,
    RenderedDocuments,
    StoredDocuments,
    render_many,
    render_stored,
)
from sealbill.domain import report_link
from sealbill.domain.invoices import Invoice
from sealbill.store import stage_events
from sealbill.store.billing.invoice_reads import stream_invoices
from sealbill.store.bulk_insert import insert_rows
from sealbill.store.parties import records as parties
from sealbill.store.schema import documents, invoices

CHUNK = 200
# Invoices a worker renders a call: each call costs the pool's threads a pickle, a wakeup
# and a result to unpickle; 20 (not 8) halves that part (0.07 -> 0.035 ms an invoice) and
# keeps 2 workers x 4 calls x 20 = the 160 invoices in flight under a stored chunk.
WORKER_CHUNK = 20
KILL_ENV = "SEALBILL_TEST_RENDER_KILL"  # test hook: "after_files" -> SIGKILL there
log = logging.getLogger(__name__)


class _Result(Protocol):
    """What a renderer sends back: :class:`RenderedDocuments` or :class:`StoredDocuments`."""

    @property
    def number(self) -> str: ...
    @property
    def renderer(self) -> str: ...
    @property
    def fallback_reason(self) -> str: ...


Batch = list[tuple[int, _Result]]  # (invoice id, its documents), a chunk's worth


@dataclass
class RenderCounts:
    """How many invoices each renderer made, and why some fell back to Typst (first 20)."""

    by_renderer: dict[str, int] = field(default_factory=dict)
    fallback_reasons: list[str] = field(default_factory=list)

    def add(self, rendered: _Result) -> None:
        self.by_renderer[rendered.renderer] = self.by_renderer.get(rendered.renderer, 0) + 1
        if rendered.renderer == FALLBACK and len(self.fallback_reasons) < 20:
            self.fallback_reasons.append(f"{rendered.number}: {rendered.fallback_reason}")

    @property
    def fallbacks(self) -> int:
        return self.by_renderer.get(FALLBACK, 0)


def unrendered_ids(engine: Engine, org_id: int, run_id: int | None = None,
                   invoice_ids: list[int] | None = None) -> list[int]:
    with engine.begin() as conn:
        query = (sa.select(invoices.c.id)
                 .outerjoin(documents, sa.and_(documents.c.invoice_id == invoices.c.id,
                                               documents.c.kind == "pdf"))
                 .where(invoices.c.organization_id == org_id,
                        invoices.c.status.in_(("finalized", "void")),
                        documents.c.id.is_(None))
                 .order_by(invoices.c.id))
        if run_id is not None:
            query = query.where(invoices.c.run_id == run_id)
        if invoice_ids is not None:
            query = query.where(invoices.c.id.in_(invoice_ids))
        return [int(i) for i in conn.execute(query).scalars()]


class RenderError(ValueError):
    def __init__(self, problems: list[str], rendered: int = 0) -> None:
        done = (f"the {rendered} invoice(s) read before the first problem were rendered, "
                "nothing after it" if rendered else "nothing was rendered")
        super().__init__(f"{len(problems)} invoice problem(s); {done}")
        self.problems = problems
        self.rendered = rendered


def render_run(engine: Engine, org_id: int, run_id: int | None, files_dir: Path, *,
               invoice_ids: list[int] | None = None, workers: int | None = None,
               on_progress: Callable[[int], None] | None = None,
               counts: RenderCounts | None = None, renderer: str | None = None) -> int:
    """Render what is not rendered yet; returns how many invoices were rendered.

    Each invoice is read once, a chunk at a time (``store.invoice_reads``), and checked
    (``check_renderable``) before anything of its chunk goes to the renderers. Once a problem
    is found nothing more is rendered; the rest is still read and checked, and
    :class:`RenderError` lists every problem of the run. The workers render while this
    process reads the next chunk and a thread stores the previous one (files, then rows).
    ``counts``, when given, is filled with the renderer of each invoice."""
    ids = unrendered_ids(engine, org_id, run_id, invoice_ids)
    if not ids:
        return 0
    with engine.begin() as conn:
        slug = str(parties.organization(conn, org_id)["slug"])
    store = store_for(engine, files_dir)  # SEALBILL_DOCUMENT_STORE (default: files_dir)
    counts = counts if counts is not None else RenderCounts()
    problems: list[str] = []
    order: deque[int] = deque()  # ids of the invoices sent to the renderers, in order
    urls: dict[str, str] = {}  # read by render_many as each invoice is submitted

    def checked() -> Iterator[Invoice]:
        for chunk, loaded in stream_invoices(engine, org_id, ids, CHUNK):
            for invoice in loaded:
                problems.extend(check_renderable(invoice))
            if problems:
                continue  # read and check the rest, render nothing more
            urls.update(report_urls(org_id, slug, [i.number for i in loaded], files_dir) or {})
            order.extend(chunk)
            yield from loaded

    count = 0
    batch: Batch = []
    results: Iterator[_Result]
    if isinstance(store, FileStore):  # the workers write the files, this process publishes
        store.folder(slug)  # an unwritable folder is an OutputError before any rendering
        results = render_stored(checked(), store, slug, workers=workers, renderer=renderer,
                                report_urls=urls, chunk_size=WORKER_CHUNK, prefetch=4)
    else:
        results = render_many(checked(), workers=workers, renderer=renderer,
                              report_urls=urls, prefetch=4)
    try:
        with _Writer(engine, store, org_id, slug, run_id, on_progress) as writer, \
                closing(results):
            for rendered in results:
                urls.pop(rendered.number, None)
                counts.add(rendered)
                batch.append((order.popleft(), rendered))
                if len(batch) == CHUNK:
                    count += writer.submit(batch)
                    batch = []
            if batch:
                count += writer.submit(batch)
                batch = []
    finally:
        _drop(batch)  # what was never handed to the writer (an error): its staged files
    if problems:
        raise RenderError(problems, count)
    if counts.fallbacks:
        log.info("%d of %d invoices rendered by Typst (did not fit the compiled template)",
                 counts.fallbacks, count)
    return count


class _Writer:
    """Stores rendered chunks on one thread, in order: a chunk's files (durably), then its
    rows in one transaction. At most two chunks wait; leaving the block waits for all, and
    the first error of any chunk is raised (the staged files of a chunk never stored are
    removed)."""

    def __init__(self, engine: Engine, store: DocumentStore, org_id: int, slug: str,
                 run_id: int | None, on_progress: Callable[[int], None] | None) -> None:
        self.engine, self.store, self.org_id, self.slug = engine, store, org_id, slug
        self.run_id = run_id
        self.on_progress = on_progress
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="render-store")
        self.pending: deque[tuple[Future[int], Batch]] = deque()

    def __enter__(self) -> _Writer:
        return self

    def submit(self, batch: Batch) -> int:
        while len(self.pending) >= 2:
            self._report(self.pending.popleft()[0].result())
        # the caller's context (the application layer's audit step) goes with the chunk
        self.pending.append((self.pool.submit(contextvars.copy_context().run, self._write,
                                              batch), batch))
        return len(batch)

    def _write(self, batch: Batch) -> int:
        ids = [i for i, _ in batch]
        rows = _store(self.store, self.slug, self.org_id, ids, [r for _, r in batch])
        if os.environ.get(KILL_ENV) == "after_files":  # test hook: a crash before the rows
            os.kill(os.getpid(), signal.SIGKILL)
        with self.engine.begin() as conn:  # the chunk's audit entry commits with its rows
            insert_rows(conn, documents, rows)  # one COPY on PostgreSQL
            stage_events.publish(conn, self.org_id, stage_events.DOCUMENTS_STORED, {
                "run_id": self.run_id, "invoice_ids": ids})
        return len(batch)

    def _report(self, done: int) -> None:
        if self.on_progress:
            self.on_progress(done)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            while self.pending:
                future, batch = self.pending.popleft()
                if kind is None:
                    self._report(future.result())
                elif future.cancel():
                    _drop(batch)
        finally:
            self.pool.shutdown(wait=True)


def report_urls(org_id: int, slug: str, numbers: list[str], files_dir: Path
                ) -> dict[str, str] | None:
    """The signed "not for me" link of each invoice, when the portal's address is configured
    (``SEALBILL_PUBLIC_URL``); signed with the installation's key (the one the portal checks)."""
    base = settings.public_url()
    if base is None:
        return None
    from sealbill.pipeline.parties.verify import secret_key

    key = secret_key(files_dir)
    return {n: report_link.url(base, slug, key, org_id, n) for n in numbers}


def _store(store: DocumentStore, slug: str, org_id: int, invoice_ids: list[int],
           results: Sequence[_Result]) -> list[dict[str, object]]:
    """Store a chunk's files (durably, before any row names them); their ``documents`` rows.
    Staged files (:class:`StoredDocuments`) are published; bytes are put in ``store``."""
    at = datetime.now(UTC)
    owners: list[tuple[int, str, int]] = []
    stored: Sequence[tuple[str | Path, str]]
    staged = [r for r in results if isinstance(r, StoredDocuments)]
    if staged:
        assert isinstance(store, FileStore) and len(staged) == len(results)
        for invoice_id, one in zip(invoice_ids, staged, strict=True):
            owners += ((invoice_id, kind, file.size) for kind, file in one.files)
        stored = store.publish_many([file for one in staged for _, file in one.files])
    else:
        items: list[tuple[str, str, str, bytes]] = []
        for invoice_id, rendered in zip(invoice_ids, results, strict=True):
            assert isinstance(rendered, RenderedDocuments)
            for kind, data in rendered.files().items():
                items.append((slug, rendered.number, kind, data))
                owners.append((invoice_id, kind, len(data)))
        stored = store.put_many(items)
    return [{"organization_id": org_id, "invoice_id": invoice_id, "kind": kind,
             "path": str(path), "sha256": digest, "size": size, "created_at": at}
            for (invoice_id, kind, size), (path, digest) in zip(owners, stored, strict=True)]


def _drop(batch: Iterable[tuple[int, _Result]]) -> None:
    """Remove the staged files of results that will not be stored."""
    discard(staged for _, rendered in batch if isinstance(rendered, StoredDocuments)
            for _, staged in rendered.files)
