"""Shared fixtures: a migrated SQLite file per test, and a real PostgreSQL per session.

PostgreSQL tests get a fresh database cloned from a migrated template (CREATE DATABASE ...
TEMPLATE), so each test starts from the real schema in about a tenth of a second.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade

_TEMPLATE_DB = "sealbill_template"
_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def sealing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One sealing key for the session (``SEALBILL_SECRET_KEY``) and a keyring directory
    outside the working tree, for the checkpoint files (one per database URL). Tests of the
    keyring itself bind their own (``sealbill.keys.use``)."""
    folder = tmp_path_factory.mktemp("keyring")
    saved = {k: os.environ.get(k) for k in ("SEALBILL_SECRET_KEY", "SEALBILL_KEYRING_DIR")}
    os.environ["SEALBILL_SECRET_KEY"] = "test-sealing-key-" + "0" * 32
    os.environ["SEALBILL_KEYRING_DIR"] = str(folder)
    yield folder
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "sealbill.sqlite"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    explicit = os.environ.get("SEALBILL_TEST_PG_URL")
    if explicit:
        base = explicit
        cluster = None
    else:
        from tests.support.pgcluster import start_cluster

        cluster = start_cluster()
        base = cluster.url
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_TEMPLATE_DB}")
        conn.exec_driver_sql(f"CREATE DATABASE {_TEMPLATE_DB}")
    template = create_engine(_with_database(base, _TEMPLATE_DB))
    upgrade(template)
    template.dispose()
    admin.dispose()
    try:
        yield base
    finally:
        if cluster is not None:
            cluster.stop()


def _with_database(url: str, name: str) -> str:
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE_DB}")
    try:
        yield _with_database(pg_server_url, name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on both databases sealbill supports."""
    return request.getfixturevalue(f"{request.param}_engine" if request.param == "sqlite"
                                   else "pg_engine")
