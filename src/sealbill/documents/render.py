"""Render every document of an invoice, alone or in bulk across processes.

Invariants:
- the PDF comes from the compiled template (:mod:`sealbill.documents.fastpdf`) when the
  invoice fits it, else from Typst (:mod:`sealbill.documents.pdf`), which stays the reference;
  ``SEALBILL_RENDERER=typst`` (or ``renderer="typst"``) forces Typst for every invoice, and
  each result says which renderer made it (``renderer``) and why it fell back;
- :func:`render_invoice` refuses an invoice :func:`check_renderable` rejects
  (:class:`DocumentError` lists every problem) instead of producing an invalid document;
- the PDF embeds exactly the XML returned next to it (:mod:`cii_text`'s, byte for byte
  :func:`cii.build_cii`'s), and both are pure functions of the invoice: rendering it twice,
  in any process, gives the same bytes and digests;
- :func:`render_many` yields results in input order and keeps at most
  ``workers × prefetch`` chunks in flight: memory stays flat whatever the number of invoices,
  and the input iterable is consumed lazily (``Pool.imap`` would read it all up front);
- :func:`render_stored` is the same for invoices already checked, each worker staging its
  chunk's files in a :class:`FileStore` itself (written, neither durable nor published: the
  caller publishes them with :meth:`FileStore.publish_many`) and sending back only where
  they are and their digests; the files of a chunk it gave up on (an error, or the caller
  stopped early) are removed.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.spawn
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, TypeVar

from sealbill.documents.bodies import mail_parts
from sealbill.documents.cii_text import build_cii_text
from sealbill.documents.facturx import make_facturx
from sealbill.documents.fastpdf import NoFit, font_cache, fonts, render_pdf
from sealbill.documents.fastpdf.assets import AssetError
from sealbill.documents.filestore import FileStore, Staged, discard
from sealbill.documents.mentions import DocumentError, check_renderable
from sealbill.domain.compact import compact_pickle
from sealbill.domain.invoices import Invoice
from sealbill.processes import exit_with_parent

FAST: Final = "fast"
TYPST: Final = "typst"
FALLBACK: Final = "typst-fallback"
RENDERER_ENV: Final = "SEALBILL_RENDERER"
log = logging.getLogger(__name__)
T = TypeVar("T")


@compact_pickle
@dataclass(frozen=True, slots=True)
class RenderedDocuments:
    """Everything sent or stored for one invoice, with the SHA-256 of each file."""

    number: str
    pdf: bytes
    xml: bytes
    html: str
    text: str
    subject: str
    pdf_sha256: str
    xml_sha256: str
    renderer: str = FAST  # FAST, TYPST (forced) or FALLBACK (did not fit the template)
    fallback_reason: str = ""

    def files(self) -> dict[str, bytes]:
        """The bytes of each stored kind (pdf, xml, html, text, subject), in that order."""
        return {"pdf": self.pdf, "xml": self.xml, "html": self.html.encode(),
                "text": self.text.encode(), "subject": self.subject.encode()}

    @property
    def digest(self) -> str:
        """One SHA-256 over all the outputs: equal iff every output is byte-identical."""
        h = hashlib.sha256()
        for part in self.files().values():
            h.update(len(part).to_bytes(8, "big"))  # length-prefixed: no ambiguity
            h.update(part)
        return h.hexdigest()


@compact_pickle
@dataclass(frozen=True, slots=True)
class StoredDocuments:
    """One invoice rendered by :func:`render_stored`: its files staged, not published."""

    number: str
    files: tuple[tuple[str, Staged], ...]  # (kind, staged file), in RenderedDocuments order
    renderer: str = FAST
    fallback_reason: str = ""


def make_pdf(invoice: Invoice, xml: bytes, renderer: str | None = None
             ) -> tuple[bytes, str, str]:
    """(Factur-X PDF, renderer used, why it fell back) for ``invoice`` with ``xml``.

    ``renderer`` defaults to ``$SEALBILL_RENDERER``, else the compiled template.
    """
    chosen = renderer or os.environ.get(RENDERER_ENV, FAST)
    if chosen == TYPST:
        return make_facturx(invoice, xml), TYPST, ""
    if chosen != FAST:
        raise ValueError(f"{RENDERER_ENV}: unknown renderer {chosen!r} (fast or typst)")
    try:
        return render_pdf(invoice, xml), FAST, ""
    except (NoFit, AssetError) as reason:
        log.debug("invoice %s rendered by Typst: %s", invoice.number, reason)
        return make_facturx(invoice, xml), FALLBACK, str(reason)


def render_invoice(invoice: Invoice, renderer: str | None = None,
                   report_url: str | None = None) -> RenderedDocuments:
    """Factur-X PDF, CII XML, mail bodies and subject of ``invoice`` (the bodies with its
    signed "not for me" link when given)."""
    problems = check_renderable(invoice)
    if problems:
        raise DocumentError(problems)
    return _render_checked(invoice, renderer, report_url)


def _render_checked(invoice: Invoice, renderer: str | None,
                    report_url: str | None) -> RenderedDocuments:
    """:func:`render_invoice` of an invoice :func:`check_renderable` has passed already."""
    xml = build_cii_text(invoice)  # the bytes of cii.build_cii, written as text
    pdf, used, reason = make_pdf(invoice, xml, renderer)
    html, text, subject = mail_parts(invoice, report_url)
    return RenderedDocuments(
        number=invoice.number,
        pdf=pdf,
        xml=xml,
        html=html,
        text=text,
        subject=subject,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        xml_sha256=hashlib.sha256(xml).hexdigest(),
        renderer=used,
        fallback_reason=reason,
    )


def _render_chunk(chunk: list[Invoice], renderer: str | None = None,
                  report_urls: Mapping[str, str] | None = None) -> list[RenderedDocuments]:
    urls = report_urls or {}
    return [render_invoice(invoice, renderer, urls.get(invoice.number)) for invoice in chunk]


def _stage_chunk(chunk: list[Invoice], renderer: str | None,
                 report_urls: Mapping[str, str] | None, store: FileStore, slug: str
                 ) -> list[StoredDocuments]:
    """Render and stage a chunk of invoices already screened by :func:`check_renderable`
    (:func:`render_stored`'s contract: the billing run checks each invoice before it is
    sent here, so the worker does not check it again)."""
    urls = report_urls or {}
    done: list[StoredDocuments] = []
    try:
        for invoice in chunk:
            rendered = _render_checked(invoice, renderer, urls.get(invoice.number))
            known = {"pdf": rendered.pdf_sha256, "xml": rendered.xml_sha256}
            files = store.stage_documents(slug, rendered.number, [
                (kind, data, known.get(kind)) for kind, data in rendered.files().items()])
            done.append(StoredDocuments(rendered.number, files, rendered.renderer,
                                        rendered.fallback_reason))
    except BaseException:
        _drop(done)
        raise
    return done


def _drop(stored: Iterable[StoredDocuments]) -> None:
    discard(staged for one in stored for _, staged in one.files)


_pool: tuple[int, int, ProcessPoolExecutor] | None = None  # (pid, workers, executor)


_WORKER_NAME: Final = "sealbill-renderer"


class _RendererProcess(multiprocessing.context.SpawnProcess):
    """A spawned renderer, named so that :func:`_preparation_data` knows it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{_WORKER_NAME}-{self.name}"


class _RendererContext(multiprocessing.context.SpawnContext):
    Process = _RendererProcess


_stock_preparation_data = multiprocessing.spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """What a spawned child is told to set up first; for a renderer, not the parent's main
    module. A spawned child runs that module again (as ``__mp_main__``) so that functions
    defined there can be called in it; a renderer only runs this module's functions, and
    the main module costs it dearly: the ``sealbill`` command imports the whole CLI (1.4 s
    of CPU per worker), a bench script everything it uses (1.1 s)."""
    data: dict[str, Any] = _stock_preparation_data(name)
    if name.startswith(_WORKER_NAME):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


def _start_worker(parent: int, kernel: bool, styles: dict[str, fonts.Style] | None) -> None:
    exit_with_parent(parent, kernel)  # first: end when the parent dies, even by SIGKILL
    if styles:
        fonts.adopt(styles)


def _prepared_styles(renderer: str) -> dict[str, fonts.Style] | None:
    """The compiled template's fonts, prepared once here for every worker; None when the
    workers will not need them or they cannot be prepared (the workers then fall back)."""
    if renderer != FAST:
        return None
    try:
        return font_cache.prepared()  # from disk when an earlier run prepared the same
    except AssetError:
        return None


def _shared_pool(workers: int, renderer: str = FAST) -> ProcessPoolExecutor:
    """A pool kept across calls: spawning workers costs ~0.2 s each (imports), so a caller
    that renders a run in many small batches must not pay it per batch. The template's fonts
    (~0.5 s to read and subset) are prepared once in this process and handed to each worker."""
    global _pool
    if _pool is not None and (_pool[0], _pool[1]) != (os.getpid(), workers):
        shutdown_pool()
    if _pool is None:
        # spawn, not fork: a forked child would inherit typst's thread state mid-flight.
        context = _RendererContext()
        multiprocessing.spawn.get_preparation_data = _preparation_data  # renderers only
        # Workers end when this process dies, even by SIGKILL (sealbill.processes).
        _pool = (os.getpid(), workers, ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker,
            initargs=(os.getpid(), threading.current_thread() is threading.main_thread(),
                      _prepared_styles(renderer))))
    return _pool[2]


def shutdown_pool() -> None:
    """Stop the shared worker processes (also done at interpreter exit)."""
    global _pool
    if _pool is not None:
        if _pool[0] == os.getpid():
            _pool[2].shutdown(wait=True, cancel_futures=True)
        _pool = None


atexit.register(shutdown_pool)


def render_many(
    invoices: Iterable[Invoice],
    workers: int | None = None,
    chunk_size: int = 8,
    prefetch: int = 2,
    renderer: str | None = None,
    report_urls: Mapping[str, str] | None = None,
) -> Generator[RenderedDocuments, None, None]:
    """Render ``invoices`` on a process pool (one worker per core by default), in order.

    Raises the first :class:`DocumentError` met (pending work is cancelled): a billing run
    should screen invoices with :func:`check_renderable` before rendering them.
    ``renderer`` as in :func:`make_pdf`. ``workers=1`` renders in this process, without a
    pool. The pool is shared between calls (see :func:`shutdown_pool`).
    """
    yield from _pooled(_render_chunk, (), None, invoices, workers, chunk_size, prefetch,
                       renderer, report_urls)


def render_stored(
    invoices: Iterable[Invoice],
    store: FileStore,
    slug: str,
    workers: int | None = None,
    chunk_size: int = 8,
    prefetch: int = 2,
    renderer: str | None = None,
    report_urls: Mapping[str, str] | None = None,
) -> Generator[StoredDocuments, None, None]:
    """:func:`render_many`, each worker staging its documents in ``store`` under ``slug``
    (whose folder must exist: :meth:`FileStore.folder`), for ``invoices`` the caller has
    screened with :func:`check_renderable` (the workers do not check them again; the
    billing run checks every invoice before any of its chunk is rendered). The caller
    publishes what it gets (:meth:`FileStore.publish_many`) or discards it (:func:`discard`);
    what it never got (the chunks in flight when it stops or an error is raised) is
    discarded here."""
    yield from _pooled(_stage_chunk, (store, slug), _drop, invoices, workers, chunk_size,
                       prefetch, renderer, report_urls)


def _pooled(work: Callable[..., list[T]], extra: tuple[Any, ...],
            drop: Callable[[list[T]], None] | None, invoices: Iterable[Invoice],
            workers: int | None, chunk_size: int, prefetch: int, renderer: str | None,
            report_urls: Mapping[str, str] | None) -> Generator[T, None, None]:
    """``work(chunk, renderer, urls, *extra)`` over ``invoices`` on the pool, in order;
    ``drop`` gets the results of the chunks in flight when the caller stops or fails."""
    count = workers or os.cpu_count() or 1
    source = iter(invoices)
    # Resolved here, not in the workers: they keep the environment they were spawned with.
    renderer = renderer or os.environ.get(RENDERER_ENV, FAST)
    if count == 1:
        for invoice in source:
            yield work([invoice], renderer, report_urls, *extra)[0]
        return
    pool = _shared_pool(count, renderer)
    pending: deque[Future[list[T]]] = deque()
    current: list[T] = []  # the chunk being yielded, and how much of it was
    given = 0
    try:
        while True:
            while len(pending) < count * prefetch:
                chunk = list(islice(source, chunk_size))
                if not chunk:
                    break
                urls = {i.number: report_urls[i.number] for i in chunk
                        if report_urls and i.number in report_urls}
                pending.append(pool.submit(work, chunk, renderer, urls, *extra))
            if not pending:
                return
            current, given = pending.popleft().result(), 0
            while given < len(current):
                given += 1
                yield current[given - 1]
    except BrokenProcessPool:
        shutdown_pool()  # a worker died (OOM kill...): the next call starts a fresh pool
        raise
    finally:
        if drop is not None:
            drop(current[given:])
        for future in pending:
            if not future.cancel() and drop is not None:  # running or done: its results
                _drop_when_done(future, drop)


def _drop_when_done(future: Future[list[T]], drop: Callable[[list[T]], None]) -> None:
    try:
        results = future.result()
    except Exception:
        return
    drop(results)
