"""File responses: always an attachment with a fixed type, never rendered in the page."""

from __future__ import annotations

from starlette.responses import Response

TYPES = {"pdf": "application/pdf", "xml": "application/xml", "zip": "application/zip"}


def attachment(name: str, data: bytes, kind: str) -> Response:
    safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_.") or f"file.{kind}"
    return Response(data, media_type=TYPES[kind],
                    headers={"Content-Disposition": f'attachment; filename="{safe}"'})
