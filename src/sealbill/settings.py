"""Process-wide settings read from the environment, never at import time."""

from __future__ import annotations

import os
from pathlib import Path


def files_dir(explicit: str | Path | None = None) -> Path:
    """Where rendered documents are stored (``SEALBILL_FILES_DIR``, default ``var/files``)."""
    return Path(explicit or os.environ.get("SEALBILL_FILES_DIR") or "var/files")


def public_url() -> str | None:
    """Where browsers reach the web portal (``SEALBILL_PUBLIC_URL``): invoice mails carry a
    "not for me" link to it; unset, they carry none (never a link to nowhere)."""
    value = os.environ.get("SEALBILL_PUBLIC_URL", "").strip().rstrip("/")
    return value or None
