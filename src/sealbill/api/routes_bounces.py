"""``/v1/bounces`` (delivery status notifications mailed back after the send) and
``/v1/contacts/{id}/clear-bounce``: the API's doors to :mod:`sealbill.app.bounces`.

``POST /v1/bounces`` takes one mail as ``message/rfc822`` (the raw bytes, as a mailbox holds
them) or several as JSON ``{"messages": [text, ...]}``; each is read like ``sealbill bounces
import`` reads a file, and the answer lists what each per-recipient block did. Roles,
``Idempotency-Key`` and problem details are the API's (the guard and the app layer).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Request

from sealbill.api import schemas
from sealbill.api.deps import ActorDep, EngineDep, org
from sealbill.api.problems import PROBLEM_RESPONSES
from sealbill.api.routes_setup import _public
from sealbill.app import bounces
from sealbill.app.errors import Invalid, Problem
from sealbill.inputs.usage import VoidIn

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
RFC822 = "message/rfc822"
_BODY = {"requestBody": {"required": True, "content": {
    RFC822: {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": ["messages"],
        "properties": {"messages": {
            "type": "array", "minItems": 1, "maxItems": bounces.MAX_DSNS,
            "items": {"type": "string", "minLength": 1,
                      "maxLength": bounces.MAX_DSN_BYTES}}}}}}}}


def _mails(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    if content_type == RFC822:
        if not body or len(body) > bounces.MAX_DSN_BYTES:
            raise Invalid("body: a DSN mail of 1 to 5,000,000 bytes is expected",
                          [Problem("body", f"{len(body)} bytes")])
        return [("body", body)]
    if content_type != "application/json":
        raise Invalid(f"Content-Type {content_type or '(none)'}: send {RFC822} or "
                      "application/json", [Problem("Content-Type", "not supported")])
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise Invalid(f"body: not JSON ({exc})", [Problem("body", "not JSON")]) from None
    return bounces.dsn_mails(data)


@router.post("/bounces", response_model=schemas.BouncesImported, tags=["contacts"],
             openapi_extra=_BODY)
async def import_bounces(request: Request, actor: ActorDep, engine: EngineDep) -> Any:
    """Read DSNs: a 5.x.x ``failed`` block bounces the recipient it names (its contact is
    flagged); 4.x.x and ``delayed`` are recorded only; an unknown message changes nothing."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    mails = _mails(content_type, await request.body())
    return await anyio.to_thread.run_sync(bounces.import_dsns, engine, actor, org(actor), mails)


@router.post("/contacts/{contact_id}/clear-bounce", response_model=schemas.Contact,
             tags=["contacts"])
def clear_bounce(contact_id: str, body: VoidIn, actor: ActorDep, engine: EngineDep) -> Any:
    """Lift a contact's bounced flag, with a reason (its history and the audit log keep it);
    409 when the contact is not flagged."""
    return bounces.clear_bounce(engine, actor, org(actor), _public(contact_id, "con_"),
                                body.model_dump())
