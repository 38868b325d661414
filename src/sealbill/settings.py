"""Process-wide settings read from the environment, never at import time.

Every path sealbill keeps is resolved against one **data directory**, so that running the CLI
from another folder finds the same documents and key:

- ``SEALBILL_DATA_DIR`` (or the global ``--data-dir`` option), else the folder of the SQLite
  database file (``--db sqlite:////srv/billing/sealbill.sqlite`` -> ``/srv/billing``), else
  (PostgreSQL) ``$XDG_DATA_HOME/sealbill`` (``~/.local/share/sealbill``);
- the documents live in ``SEALBILL_FILES_DIR`` — relative to the data directory when it is a
  relative path — default ``<data dir>/files``; the paths stored in the database are absolute.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///sealbill.sqlite"

# The database this process was told to work on (the CLI's ``--db``): the data directory, the
# documents, the verification secret and the sealing keyring all follow it, whichever code
# path asks without naming a database.
_chosen_database: str | None = None


def use_database(db_url: str | None) -> None:
    """Record the database a command named (``--db``); ``None`` keeps the environment's."""
    global _chosen_database
    _chosen_database = db_url


def _sqlite_file(db_url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def data_dir(db_url: str | None = None) -> Path:
    """The data directory (absolute) for the database ``db_url`` (see the module docstring)."""
    explicit = os.environ.get("SEALBILL_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    url = (db_url or _chosen_database or os.environ.get("SEALBILL_DATABASE_URL")
           or DEFAULT_DATABASE_URL)
    database = _sqlite_file(url)
    if database is not None:
        return database.expanduser().resolve().parent
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return (Path(base) / "sealbill").resolve()


def files_dir(explicit: str | Path | None = None, *, db_url: str | None = None) -> Path:
    """Where rendered documents are stored, absolute: ``explicit`` (a folder the user named,
    relative to the current folder), else ``SEALBILL_FILES_DIR`` (relative to the data
    directory), else ``<data dir>/files``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    configured = os.environ.get("SEALBILL_FILES_DIR")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else (data_dir(db_url) / path).resolve()
    return data_dir(db_url) / "files"


def public_url() -> str | None:
    """Where browsers reach the web portal (``SEALBILL_PUBLIC_URL``): invoice mails carry a
    "not for me" link to it; unset, they carry none (never a link to nowhere)."""
    value = os.environ.get("SEALBILL_PUBLIC_URL", "").strip().rstrip("/")
    return value or None
