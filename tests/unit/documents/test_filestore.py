"""Immutable file store: write once, idempotent, atomic, no overwrite, no escape."""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sealbill.documents.filestore import (
    FileStore,
    FileStoreError,
    ImmutableFileError,
    Staged,
    discard,
)


def test_put_writes_the_bytes_and_returns_path_and_sha256(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    path, digest = store.put("acme", "FA-2025-0001", "pdf", b"%PDF-1.7 hello")
    assert path == tmp_path / "acme" / "FA-2025-0001.pdf"
    assert path.read_bytes() == b"%PDF-1.7 hello"
    assert digest == hashlib.sha256(b"%PDF-1.7 hello").hexdigest()
    assert store.read("acme", "FA-2025-0001", "pdf") == b"%PDF-1.7 hello"


def test_putting_identical_bytes_again_is_a_no_op(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.put("acme", "FA-1", "xml", b"<a/>")
    mtime = first[0].stat().st_mtime_ns
    assert store.put("acme", "FA-1", "xml", b"<a/>") == first
    assert first[0].stat().st_mtime_ns == mtime


def test_different_bytes_for_a_stored_document_are_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    path, _ = store.put("acme", "FA-1", "pdf", b"original")
    with pytest.raises(ImmutableFileError):
        store.put("acme", "FA-1", "pdf", b"tampered")
    assert path.read_bytes() == b"original"


def test_stored_files_are_read_only_and_no_temporary_file_remains(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    path, _ = store.put("acme", "FA-1", "html", b"<p>x</p>")
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert sorted(p.name for p in path.parent.iterdir()) == ["FA-1.html"]


def test_each_kind_has_its_own_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    names = {store.put("acme", "FA-1", kind, kind.encode())[0].name
             for kind in ("pdf", "xml", "html", "text", "subject")}
    assert names == {"FA-1.pdf", "FA-1.xml", "FA-1.html", "FA-1.txt", "FA-1.subject.txt"}


def test_invoice_numbers_with_slashes_or_dots_stay_in_their_folder(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    a, _ = store.put("acme", "2025/03/0001", "pdf", b"a")
    b, _ = store.put("acme", "../../etc/passwd", "pdf", b"b")
    c, _ = store.put("acme", "2025%2F03%2F0001", "pdf", b"c")  # looks like a's encoding
    for path in (a, b, c):
        assert path.parent == tmp_path / "files" / "acme"
    assert len({a, b, c}) == 3


@pytest.mark.parametrize(("slug", "number", "kind"), [
    ("../acme", "FA-1", "pdf"), ("Acme", "FA-1", "pdf"), ("", "FA-1", "pdf"),
    ("acme", "", "pdf"), ("acme", "FA-1", "exe"),
])
def test_invalid_names_are_refused(tmp_path: Path, slug: str, number: str, kind: str) -> None:
    with pytest.raises(FileStoreError):
        FileStore(tmp_path).put(slug, number, kind, b"x")


def test_concurrent_writers_cannot_overwrite_each_other(tmp_path: Path) -> None:
    store = FileStore(tmp_path)

    def put(data: bytes) -> str:
        try:
            store.put("acme", "FA-RACE", "pdf", data)
            return data.decode()
        except ImmutableFileError:
            return "refused"

    contents = [f"version-{i % 2}".encode() for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, contents))
    stored = store.read("acme", "FA-RACE", "pdf").decode()
    assert set(outcomes) == {stored, "refused"}  # one version won, the other was refused
    assert outcomes.count(stored) == 8
    assert not [p for p in (tmp_path / "acme").iterdir() if p.name.startswith(".tmp-")]
    assert os.listdir(tmp_path / "acme") == ["FA-RACE.pdf"]


def test_a_batch_stores_what_put_stores_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    batch = FileStore(tmp_path / "batch")
    single = FileStore(tmp_path / "single")
    items = [("acme", f"F-{n:03d}", kind, f"{kind} of {n}".encode())
             for n in range(30) for kind in ("pdf", "xml", "text")]
    stored = batch.put_many(items)
    for (slug, number, kind, data), (path, digest) in zip(items, stored, strict=True):
        assert path.read_bytes() == data and digest == hashlib.sha256(data).hexdigest()
        assert path.relative_to(tmp_path / "batch") == single.put(
            slug, number, kind, data)[0].relative_to(tmp_path / "single")
        assert not stat.S_IMODE(path.stat().st_mode) & 0o222
    assert not [p for p in (tmp_path / "batch" / "acme").iterdir() if p.name.startswith(".tmp")]


def test_a_batch_is_idempotent_and_refuses_changed_bytes(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("acme", "F-001", "pdf", b"first")
    again = store.put_many([("acme", "F-001", "pdf", b"first"), ("acme", "F-002", "pdf", b"x"),
                            ("acme", "F-002", "pdf", b"x")])
    assert [path.name for path, _ in again] == ["F-001.pdf", "F-002.pdf", "F-002.pdf"]
    with pytest.raises(ImmutableFileError):
        store.put_many([("acme", "F-003", "pdf", b"new"), ("acme", "F-001", "pdf", b"changed")])
    with pytest.raises(ImmutableFileError):
        store.put_many([("acme", "F-004", "xml", b"a"), ("acme", "F-004", "xml", b"b")])
    assert store.read("acme", "F-001", "pdf") == b"first"


def _record(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str]],
            syncfs_works: bool = True) -> None:
    """Record the batch's syncs and links, in order (the real calls still run)."""
    from sealbill.documents import filestore

    syncfs_path, fsync_path, link = filestore._syncfs, filestore._fsync_path, os.link

    def syncfs(folder: Path) -> bool:
        events.append(("syncfs", str(folder)))
        return syncfs_works and syncfs_path(folder)

    def fsync(path: Path) -> None:
        events.append(("fsync", str(path)))
        fsync_path(path)

    def linked(source: object, target: object) -> None:
        events.append(("link", str(source)))
        link(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(filestore, "_syncfs", syncfs)
    monkeypatch.setattr(filestore, "_fsync_path", fsync)
    monkeypatch.setattr(os, "link", linked)


@pytest.mark.parametrize("sync", ["filesystem", "file"])
def test_every_file_of_a_batch_is_durable_before_any_is_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: str) -> None:
    events: list[tuple[str, str]] = []
    _record(monkeypatch, events)
    store = FileStore(tmp_path, sync=sync)
    items = [("acme", f"F-{n}", kind, f"{kind} {n}".encode()) for n in range(4)
             for kind in ("pdf", "xml")]
    stored = store.put_many(items)
    links = [k for k, (what, _) in enumerate(events) if what == "link"]
    assert len(links) == len(items)
    temps = {path for what, path in events if what == "link"}
    before = events[:links[0]]
    if sync == "filesystem":
        assert ("syncfs", str(tmp_path / "acme")) in before
    else:
        assert {path for what, path in before if what == "fsync"} == temps
    assert ("fsync", str(tmp_path / "acme")) in events[links[-1]:]  # the names, after
    assert [path.read_bytes() for path, _ in stored] == [data for *_, data in items]


def test_when_syncfs_fails_each_file_of_the_batch_is_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    _record(monkeypatch, events, syncfs_works=False)
    FileStore(tmp_path, sync="filesystem").put_many(
        [("acme", "F-1", "pdf", b"a"), ("acme", "F-1", "xml", b"b")])
    first_link = next(k for k, (what, _) in enumerate(events) if what == "link")
    temps = {path for what, path in events if what == "link"}
    assert {path for what, path in events[:first_link] if what == "fsync"} == temps


def _stage_in_child(store: FileStore) -> list[Staged]:
    return [store.stage("acme", "F-9", kind, kind.encode()) for kind in ("pdf", "text")]


def test_files_staged_by_another_process_are_published_by_this_one(tmp_path: Path) -> None:
    import multiprocessing

    store = FileStore(tmp_path)
    store.folder("acme")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        staged = pool.apply(_stage_in_child, (store,))
    assert not any(os.path.exists(s.path) for s in staged)  # written, not published
    stored = store.publish_many(staged)
    assert [Path(p).read_bytes() for p, _ in stored] == [b"pdf", b"text"]
    assert sorted(os.listdir(tmp_path / "acme")) == ["F-9.pdf", "F-9.txt"]


def test_discarded_staged_files_leave_nothing_and_publish_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.folder("acme")
    discard([store.stage("acme", "F-1", "pdf", b"x"), store.stage("acme", "F-2", "pdf", b"y")])
    assert os.listdir(tmp_path / "acme") == []


def test_an_unknown_sync_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileStoreError, match="unknown sync mode 'sometimes'"):
        FileStore(tmp_path, sync="sometimes")


def test_an_invoices_documents_are_staged_under_the_names_put_gives_them(
        tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.folder("acme")
    documents = [("pdf", b"%PDF", hashlib.sha256(b"%PDF").hexdigest()),
                 ("text", b"hello", None), ("subject", b"Facture 2025/1", None)]
    staged = store.stage_documents("acme", "2025/1", documents)
    assert [kind for kind, _ in staged] == ["pdf", "text", "subject"]
    for (kind, data, _), (_, one) in zip(documents, staged, strict=True):
        assert one.path == str(store.path_for("acme", "2025/1", kind))
        assert (one.sha256, one.size) == (hashlib.sha256(data).hexdigest(), len(data))
    stored = store.publish_many([one for _, one in staged])
    assert [Path(path).read_bytes() for path, _ in stored] == [d for _, d, _ in documents]


def test_an_invoice_whose_documents_cannot_all_be_staged_leaves_no_file(
        tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.folder("acme")
    with pytest.raises(FileStoreError, match="unknown document kind"):
        store.stage_documents("acme", "F-1", [("pdf", b"a", None), ("xml", b"b", None),
                                              ("exe", b"c", None)])
    assert os.listdir(tmp_path / "acme") == []
