"""Logging set up once by the CLI: human-readable, or one JSON object per line when asked.

Modules log with ``logging.getLogger(__name__)`` and pass facts in ``extra={"fields": {...}}``;
the JSON formatter puts them at the top level of the record.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure(level: str = "WARNING", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("sealbill")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
