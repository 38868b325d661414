"""Operator console: what is recorded on an incident page (facts, decision, containment)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import incident_actions
from sealbill.web import base
from sealbill.web.console import call, signed_in

router = APIRouter(prefix="/console/incidents/{incident_id}")


@router.post("/facts")
@signed_in
async def facts(request: Request, who: base.Console, incident_id: int) -> Response:
    form = await base.posted(request, who.csrf)
    await call(incident_actions.record_facts, base.engine(request), who.actor, who.org_id,
               incident_id, cause=form.get("cause", ""), detection=form.get("detection", ""))
    return base.redirect(f"/console/incidents/{incident_id}")


@router.post("/decide")
@signed_in
async def decide(request: Request, who: base.Console, incident_id: int) -> Response:
    form = await base.posted(request, who.csrf)
    await call(incident_actions.decide, base.engine(request), who.actor, who.org_id,
               incident_id, notify=form.get("notify") == "yes", reason=form.get("reason", ""),
               communication=form.get("communication") or None,
               communication_reason=form.get("communication_reason", ""),
               exemption=form.get("exemption") or None)
    return base.redirect(f"/console/incidents/{incident_id}")


@router.post("/contain")
@signed_in
async def contain(request: Request, who: base.Console, incident_id: int) -> Response:
    await base.posted(request, who.csrf)
    await call(incident_actions.contain, base.engine(request), who.actor, who.org_id,
               incident_id)
    return base.redirect(f"/console/incidents/{incident_id}")
