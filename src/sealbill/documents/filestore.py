"""Immutable, content-checked file store for rendered documents.

Layout: ``<root>/<org_slug>/<invoice number>.<extension>`` (``text`` -> ``.txt``, ``subject`` ->
``.subject.txt``). The invoice number is percent-encoded (a French invoice number may contain
``/``), so distinct numbers never share a path and no number can climb out of its folder.

Invariants:
- a file, once written, never changes: ``put`` with different bytes raises
  :class:`ImmutableFileError`; ``put`` with identical bytes is a no-op returning the same
  (path, sha256), so a retried render-and-store is safe;
- a reader never sees a partial file: bytes go to a temporary file in the same folder, are
  made durable, then published in one atomic step. Publishing uses ``os.link``, which fails
  if the name exists, so two concurrent writers cannot overwrite each other (``os.replace``
  would silently clobber); where hard links are unsupported it falls back to ``os.replace``
  after an existence check;
- published files are read-only (0444); a crash may leave ``.tmp-*.part`` files behind,
  never a partial file under a document's name;
- a batch (:meth:`FileStore.put_many`, or :meth:`FileStore.stage` in any process then
  :meth:`FileStore.publish_many`) keeps all of this: every file of the batch is durable before
  any is published, and every published name is durable (its folder fsynced) before the call
  returns.

How a batch's files are made durable (``sync``, ``SEALBILL_DOCUMENT_SYNC`` in
:func:`sealbill.documents.docstore.store_for`):
- ``filesystem`` (the default on Linux ≥ 5.8): the temporary files are written without an
  fsync each, then one ``syncfs(2)`` of each filesystem the batch is on makes them all
  durable. It costs ~3× less CPU than an fsync per file, the kernel's flusher threads
  counted (~0.1 ms a file here: the kernel work of an fsync is per call, see
  ``bench/RESULTS.md``), but it waits for every dirty page of that filesystem, other
  processes' included, so a store on a disk busy with other writers waits for their writes;
  ``syncfs`` reports write-back errors only since Linux 5.8. If the call is missing or fails,
  each file of the batch is fsynced instead (an error of another process's file does not
  fail the batch; an error of one of ours does);
- ``file``: an fsync per file (concurrently, on a few threads), the choice for a store on a
  network file system (NFS, SMB), where ``syncfs`` may not flush the server's copy.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from sealbill.domain.compact import compact_pickle
from sealbill.outputs.files import output_folder

# Document kind -> file extension (the kinds the render pipeline stores).
EXTENSIONS: Final = {
    "pdf": "pdf", "xml": "xml", "html": "html", "text": "txt", "subject": "subject.txt",
}
SYNC_MODES: Final = ("filesystem", "file")
_SLUG: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class FileStoreError(ValueError):
    """A put the store refuses."""


class ImmutableFileError(FileStoreError):
    """The path already holds different bytes; stored documents are never overwritten."""


@compact_pickle
@dataclass(frozen=True, slots=True)
class Staged:
    """A document written to ``temp`` (not durable, not published yet) for ``path``.
    (Plain strings: a renderer sends thousands of these to the parent.)"""

    path: str
    sha256: str
    size: int
    temp: str


class FileStore:
    """Documents under ``root``, one folder per organization."""

    def __init__(self, root: str | os.PathLike[str], sync: str | None = None) -> None:
        self.root = Path(root)
        if sync is not None and sync not in SYNC_MODES:
            raise FileStoreError(f"unknown sync mode {sync!r} (one of {', '.join(SYNC_MODES)})")
        self.sync = sync or default_sync()

    def path_for(self, org_slug: str, invoice_number: str, kind: str) -> Path:
        return Path(self._name(org_slug, invoice_number, kind))

    def _name(self, org_slug: str, invoice_number: str, kind: str) -> str:
        return f"{self._stem(org_slug, invoice_number)}.{_extension(kind)}"

    def _stem(self, org_slug: str, invoice_number: str) -> str:
        """An invoice's path without the extension (its kinds differ only by that)."""
        if not _SLUG.match(org_slug):
            raise FileStoreError(f"invalid organization slug {org_slug!r}")
        if not invoice_number:
            raise FileStoreError("empty invoice number")
        # quote() with no safe characters but - _ + is injective and drops "/" and "..".
        return os.path.join(self.root, org_slug, quote(invoice_number, safe="-_+"))

    def read(self, org_slug: str, invoice_number: str, kind: str) -> bytes:
        return self.path_for(org_slug, invoice_number, kind).read_bytes()

    def folder(self, org_slug: str) -> Path:
        """The organization's folder, created (never a planted link; an OutputError)."""
        folder = self.path_for(org_slug, "-", "pdf").parent  # the slug checked
        return output_folder(self.root, folder.relative_to(self.root))

    def put(self, org_slug: str, invoice_number: str, kind: str, data: bytes) -> tuple[Path, str]:
        """Store ``data``; returns (path, sha256 hex). Idempotent for identical bytes."""
        path = self.path_for(org_slug, invoice_number, kind)
        digest = hashlib.sha256(data).hexdigest()
        if path.exists():
            return path, _same_or_raise(str(path), digest)
        self.folder(org_slug)
        tmp = _write_temp(str(path.parent), data)
        try:
            _fsync_path(tmp)
            published = _publish(tmp, str(path))
        finally:
            _unlink(tmp)
        if not published:  # another writer won the race: same bytes or refuse
            return path, _same_or_raise(str(path), digest)
        _fsync_path(str(path.parent))
        return path, digest

    def put_many(self, items: Sequence[tuple[str, str, str, bytes]]
                 ) -> list[tuple[Path, str]]:
        """``put`` of each (org slug, invoice number, kind, data), in order, as one batch
        (see the module: every file durable before any is published)."""
        for slug in {slug for slug, *_ in items}:
            self.folder(slug)
        staged: list[Staged] = []
        try:
            staged += (self.stage(*item) for item in items)
        except BaseException:
            discard(staged)
            raise
        return [(Path(path), digest) for path, digest in self.publish_many(staged)]

    def stage(self, org_slug: str, invoice_number: str, kind: str, data: bytes,
              sha256: str | None = None) -> Staged:
        """``data`` written to a temporary file beside its path, neither durable nor
        published: :meth:`publish_many` does both (in this process or another; the
        organization's folder must exist, see :meth:`folder`). ``sha256``: the data's,
        when the caller has it already."""
        return self.stage_documents(org_slug, invoice_number, [(kind, data, sha256)])[0][1]

    def stage_documents(self, org_slug: str, invoice_number: str,
                        documents: Sequence[tuple[str, bytes, str | None]]
                        ) -> tuple[tuple[str, Staged], ...]:
        """:meth:`stage` of each (kind, data, sha256 or None) of one invoice: (kind, staged
        file) of each, in order; the invoice's name is checked and encoded once. If one
        cannot be written, those already written are removed."""
        stem, folder = self._stem(org_slug, invoice_number), os.path.join(self.root, org_slug)
        # Written even if a path exists (a rerun): publishing then checks its bytes; a lookup
        # first would cost every new file of a large folder more than it saves.
        staged: list[tuple[str, Staged]] = []
        try:
            for kind, data, sha256 in documents:
                staged.append((kind, Staged(f"{stem}.{_extension(kind)}",
                                            sha256 or hashlib.sha256(data).hexdigest(),
                                            len(data), _write_temp(folder, data))))
        except BaseException:
            discard(file for _, file in staged)
            raise
        return tuple(staged)

    def publish_many(self, staged: Sequence[Staged], threads: int = 16
                     ) -> list[tuple[str, str]]:
        """Make the staged files durable, publish them, make their names durable; (path,
        sha256) of each, in order. A path that already holds the same bytes is kept, other
        bytes raise :class:`ImmutableFileError` (after publishing the rest). The temporary
        files are gone when this returns or raises."""
        temps = [s.temp for s in staged]
        # A staged file's temporary name is in its path's folder (:meth:`stage`).
        folders = {os.path.dirname(s.path) for s in staged}
        try:
            self._make_durable(temps, folders, threads)
            published = [_publish(s.temp, s.path) for s in staged]
        finally:
            discard(staged)
        for folder in folders:  # what a killed run published is made durable too before
            _fsync_path(folder)  # any row names it
        return [(s.path, s.sha256 if done else _same_or_raise(s.path, s.sha256))
                for s, done in zip(staged, published, strict=True)]

    def _make_durable(self, temps: list[str], folders: set[str], threads: int) -> None:
        if not temps:
            return
        if self.sync == "filesystem":
            devices = {os.stat(folder).st_dev: folder for folder in folders}  # one a filesystem
            if all([_syncfs(folder) for folder in devices.values()]):
                return
        # The fsyncs of a batch run concurrently: the filesystem commits them together,
        # where one after the other they cost a rendering run ~10 ms a document.
        with ThreadPoolExecutor(max(1, min(threads, len(temps)))) as pool:
            list(pool.map(_fsync_path, temps))


def discard(staged: Iterable[Staged]) -> None:
    """Remove the temporary files of ``staged`` (the batch will not be published)."""
    for s in staged:
        _unlink(s.temp)


def _extension(kind: str) -> str:
    try:
        return EXTENSIONS[kind]
    except KeyError:
        raise FileStoreError(f"unknown document kind {kind!r} (one of {sorted(EXTENSIONS)})"
                             ) from None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def default_sync() -> str:
    """``filesystem`` where ``syncfs(2)`` exists and reports write-back errors (Linux ≥ 5.8),
    else ``file``."""
    if _LIBC is None or os.uname().sysname != "Linux":
        return "file"
    try:
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return "file"
    return "filesystem" if (major, minor) >= (5, 8) else "file"


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "syncfs") else None


_LIBC: Final = _load_libc()


def _syncfs(folder: str) -> bool:
    """``syncfs(2)`` of the filesystem holding ``folder``; False if it is missing or failed
    (the caller then fsyncs each file)."""
    if _LIBC is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return bool(_LIBC.syncfs(fd) == 0)
    finally:
        os.close(fd)


def _same_or_raise(path: str, digest: str) -> str:
    """``digest`` if the file at ``path`` holds those bytes, else :class:`ImmutableFileError`."""
    existing = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if existing != digest:
        raise ImmutableFileError(
            f"{path} already holds different content (sha256 {existing}, new {digest})"
        )
    return digest


def _write_temp(folder: str, data: bytes) -> str:
    """``data`` in a new read-only (0444) temporary file of ``folder``, not fsynced."""
    path = f"{folder}/.tmp-{secrets.token_hex(8)}.part"
    # Created read-only: the descriptor that creates it may still write it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    try:
        os.fchmod(fd, 0o444)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(fd)
    return path


def _publish(tmp: str, path: str) -> bool:
    """Atomically make ``tmp`` visible as ``path``; False if ``path`` already exists."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    if os.path.exists(path):  # no hard links here: best effort, a tiny race window remains
        return False
    os.replace(tmp, path)
    return True


def _fsync_path(path: str) -> None:
    """fsync a file (its bytes) or a folder (its entries: a link or rename in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
