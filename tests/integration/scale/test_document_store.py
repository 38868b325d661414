"""The document stores: immutable, idempotent for identical bytes, digests checked on read."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.documents import docstore
from sealbill.documents.filestore import FileStore, FileStoreError, ImmutableFileError
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.pipeline.delivery.send import send_run
from sealbill.store.schema import document_blobs, documents
from tests.support.scenario import build_scenario, seed_organization
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture


def test_the_default_store_is_the_files_directory(sqlite_engine: Engine, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(docstore.STORE_ENV, raising=False)
    store = docstore.store_for(sqlite_engine, tmp_path / "files")
    assert isinstance(store, FileStore) and store.root == (tmp_path / "files").resolve()
    monkeypatch.setenv(docstore.STORE_ENV, f"dir:{tmp_path / 'shared'}")
    shared = docstore.store_for(sqlite_engine, tmp_path / "files")
    assert isinstance(shared, FileStore) and shared.root == (tmp_path / "shared").resolve()
    monkeypatch.setenv(docstore.STORE_ENV, "database")
    with pytest.raises(FileStoreError, match="needs PostgreSQL"):
        docstore.store_for(sqlite_engine, tmp_path)
    monkeypatch.setenv(docstore.STORE_ENV, "s3")
    with pytest.raises(FileStoreError, match="files, dir:<path> or database"):
        docstore.store_for(sqlite_engine, tmp_path)


def test_the_sync_mode_of_a_file_store_is_configured(sqlite_engine: Engine, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(docstore.STORE_ENV, raising=False)
    monkeypatch.setenv(docstore.SYNC_ENV, "file")
    store = docstore.store_for(sqlite_engine, tmp_path / "files")
    assert isinstance(store, FileStore) and store.sync == "file"
    monkeypatch.setenv(docstore.STORE_ENV, f"dir:{tmp_path / 'shared'}")
    shared = docstore.store_for(sqlite_engine, tmp_path / "files")
    assert isinstance(shared, FileStore) and shared.sync == "file"
    monkeypatch.setenv(docstore.SYNC_ENV, "never")
    with pytest.raises(FileStoreError, match="SEALBILL_DOCUMENT_SYNC: expected filesystem or "
                                             "file, got 'never'"):
        docstore.store_for(sqlite_engine, tmp_path)


def test_a_file_changed_after_rendering_is_refused_on_read(sqlite_engine: Engine,
                                                           tmp_path: Path) -> None:
    path, digest = FileStore(tmp_path).put("acme", "F-2026/1", "pdf", b"%PDF original")
    with sqlite_engine.begin() as conn:
        assert docstore.read(conn, str(path), digest) == b"%PDF original"
        path.chmod(0o644)
        path.write_bytes(b"%PDF tampered")
        with pytest.raises(docstore.DocumentDigestError, match="does not match"):
            docstore.read(conn, str(path), digest)


def test_the_database_store_keeps_documents_once_and_checks_them(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_organization(pg_engine, accounts=1, files_dir=tmp_path, slug="acme")
    monkeypatch.setenv(docstore.STORE_ENV, "database")
    store = docstore.store_for(pg_engine, tmp_path)
    location, digest = store.put("acme", "F-2026/1", "pdf", b"%PDF one")
    assert str(location) == "db:acme/F-2026%2F1.pdf"
    assert store.put("acme", "F-2026/1", "pdf", b"%PDF one") == (location, digest)  # a retry
    with pytest.raises(ImmutableFileError):
        store.put("acme", "F-2026/1", "pdf", b"%PDF two")
    with pg_engine.begin() as conn:
        assert docstore.read(conn, str(location), digest) == b"%PDF one"
        assert conn.execute(sa.select(sa.func.count()).select_from(document_blobs)
                            ).scalar_one() == 1
        conn.execute(sa.update(document_blobs).values(data=b"%PDF edited"))
        with pytest.raises(docstore.DocumentDigestError):
            docstore.read(conn, str(location), digest)


def test_a_cycle_rendered_into_the_database_is_sent_from_it(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        smtp_server: SmtpCapture) -> None:  # noqa: F811
    monkeypatch.setenv(docstore.STORE_ENV, "database")
    world = build_scenario(pg_engine, accounts=3, files_dir=tmp_path)
    assert not list(tmp_path.rglob("*.pdf"))  # nothing in the files directory
    with pg_engine.begin() as conn:
        paths = list(conn.execute(sa.select(documents.c.path)).scalars())
    assert len(paths) == 15 and all(p.startswith("db:acme-cloud/") for p in paths)
    plan_run(pg_engine, world.org_id, world.run_id, actor="planner")
    report = send_run(pg_engine, world.org_id, world.run_id, signer=None,
                      transport=SmtpSender(SmtpConfig(host=smtp_server.host,
                                                      port=smtp_server.port, timeout=2.0)))
    assert report.status == "sent"
    assert {r for m in smtp_server.received for r in m.rcpt_tos} >= {
        f"billing{i}@client{i}.example" for i in (1, 2, 3)}
