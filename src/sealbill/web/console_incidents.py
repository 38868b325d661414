"""Operator console: what is recorded on an incident page (facts, severity, measures, the
notification, decision, containment — kill switch, token revocation, rotation —, widening the
scope, closing).

Each form calls one use case of :mod:`sealbill.app.incident_actions` (role check, the same
pipeline function as the CLI, the incident's timeline, audit); a refused form is shown again
on the incident page with its field errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import incident_actions, incident_open, records
from sealbill.domain.severity import INPUT_NAMES
from sealbill.web import base
from sealbill.web.console import act, call, signed_in
from sealbill.web.forms import Failed

router = APIRouter(prefix="/console/incidents/{incident_id}")


async def incident_page(request: Request, who: base.Console, incident_id: int,
                        refused: Failed | None = None) -> Response:
    data = await call(records.incident_detail, base.engine(request), who.actor,
                      who.org_id, incident_id)
    return base.show(request, "console/incident.html", who.csrf,
                     status=refused.status if refused else 200, actor=who.actor,
                     incident_id=incident_id, data=data, failed=refused,
                     severity_inputs=INPUT_NAMES)


async def _act(request: Request, who: base.Console, incident_id: int, form_name: str,
               action: Callable[[Any, dict[str, str]], Any]) -> Response:
    return await act(request, who, form_name, action,
                     lambda refused: incident_page(request, who, incident_id, refused),
                     f"/console/incidents/{incident_id}")


@router.post("/facts")
@signed_in
async def facts(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "facts", lambda db, form: (
        incident_actions.record_facts(db, who.actor, who.org_id, incident_id,
                                      cause=form.get("cause", ""),
                                      detection=form.get("detection", ""))))


@router.post("/assess")
@signed_in
async def assess(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "assess", lambda db, form: (
        incident_actions.assess(
            db, who.actor, who.org_id, incident_id,
            changes={n: form.get(n, "") for n in INPUT_NAMES},
            justifications={n: form.get(f"why_{n}", "") for n in INPUT_NAMES},
            recipients_known=form.get("recipients_unknown") != "yes")))


@router.post("/measures")
@signed_in
async def measures(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "measures", lambda db, form: (
        incident_actions.record_measures(
            db, who.actor, who.org_id, incident_id, taken=form.get("taken", ""),
            proposed=form.get("proposed", ""),
            deletion_requested_at=form.get("deletion_requested_at", ""),
            customers_warned_at=form.get("customers_warned_at", ""))))


@router.post("/notification")
@signed_in
async def notification(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "notification", lambda db, form: (
        incident_actions.record_notification(
            db, who.actor, who.org_id, incident_id,
            notification_type=form.get("notification_type", ""),
            notified_at=form.get("notified_at", ""),
            delay_reason=form.get("delay_reason", ""))))


@router.post("/decide")
@signed_in
async def decide(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "decide", lambda db, form: (
        incident_actions.decide(
            db, who.actor, who.org_id, incident_id, notify=form.get("notify") == "yes",
            reason=form.get("reason", ""), communication=form.get("communication") or None,
            communication_reason=form.get("communication_reason", ""),
            exemption=form.get("exemption") or None)))


@router.post("/contain")
@signed_in
async def contain(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "contain", lambda db, form: (
        incident_actions.contain(db, who.actor, who.org_id, incident_id)))


@router.post("/close")
@signed_in
async def close(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "close", lambda db, form: (
        incident_actions.close(db, who.actor, who.org_id, incident_id,
                               form.get("reason", ""))))


@router.post("/widen")
@signed_in
async def widen(request: Request, who: base.Console, incident_id: int) -> Response:
    """Add the messages of a ledger search to the scope, with a reason."""
    return await _act(request, who, incident_id, "widen", lambda db, form: (
        incident_open.widen(db, who.actor, who.org_id, incident_id, search=form,
                            reason=form.get("reason", ""))))


@router.post("/revoke-tokens")
@signed_in
async def revoke_tokens(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "revoke-tokens", lambda db, form: (
        incident_open.revoke_tokens(db, who.actor, who.org_id, incident_id)))


@router.post("/rotate")
@signed_in
async def rotate(request: Request, who: base.Console, incident_id: int) -> Response:
    return await _act(request, who, incident_id, "rotate", lambda db, form: (
        incident_open.rotate(db, who.actor, who.org_id, incident_id)))
