"""Operator console: sign-in, dashboard, runs (with live progress), the held-run review, open
alerts, and setting a message aside (from the review or an alert).

Handlers translate HTTP to one use case of :mod:`sealbill.app` each and render the result; the
rules (roles, four-eyes, reasons, audit) live in the use cases. A request without a live console
session is sent to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response

from sealbill.app import (
    dashboard,
    message_actions,
    misdelivery,
    records,
    run_review,
    runs,
    sessions,
)
from sealbill.app.context import RUNS_APPROVE
from sealbill.app.errors import AppError, Unauthenticated
from sealbill.web import base
from sealbill.web.forms import Failed, failed
from sealbill.web.security import set_cookie

router = APIRouter(prefix="/console")
Handler = Callable[..., Awaitable[Response]]


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def signed_in(handler: Handler) -> Callable[..., Awaitable[Response]]:
    """Run ``handler`` with the request's console session, or send to the sign-in page."""
    async def wrapper(request: Request, **params: Any) -> Response:
        who = await base.console(request)
        if who is None:
            return base.redirect("/console/sign-in")
        request.state.console = who
        return await handler(request, who, **params)
    return base.as_route(wrapper, handler)


async def act(request: Request, who: base.Console, form_name: str,
              action: Callable[[Any, dict[str, str]], Any],
              page: Callable[[Failed], Awaitable[Response]], done: str) -> Response:
    """Run one use case with the posted form (CSRF checked first): on to ``done``, or the
    ``page`` again with the refusal next to the form's fields."""
    form = await base.posted(request, who.csrf)
    try:
        await call(action, base.engine(request), form)
    except AppError as exc:
        return await page(failed(form_name, exc, form))
    return base.redirect(done)


def show(request: Request, who: base.Console, template: str, **context: Any) -> Response:
    return base.show(request, template, who.csrf, actor=who.actor, **context)


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    return base.show(request, "console/sign_in.html", error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await base.posted(request, None)
    db = base.engine(request)
    try:
        token, _ = await call(sessions.sign_in, db, form.get("email", ""),
                              form.get("password", ""), form.get("code", ""),
                              form.get("organization", ""))
    except Unauthenticated as exc:
        return base.show(request, "console/sign_in.html", status=401, error=exc.message)
    response = base.redirect("/console/")
    set_cookie(response, base.CONSOLE_COOKIE, token, path="/console",
               secure=base.config(request).secure_cookies)
    return response


@router.post("/sign-out")
@signed_in
async def sign_out(request: Request, who: base.Console) -> Response:
    await base.posted(request, who.csrf)
    await call(sessions.sign_out, base.engine(request),
               request.cookies.get(base.CONSOLE_COOKIE, ""))
    response = base.redirect("/console/sign-in")
    response.delete_cookie(base.CONSOLE_COOKIE, path="/console")
    return response


@router.get("/")
@signed_in
async def home(request: Request, who: base.Console) -> Response:
    data = await call(dashboard.overview, base.engine(request), who.actor,
                      who.org_id)
    return show(request, who, "console/dashboard.html", data=data,
                bars=dashboard.chart_bars(data["cycles"]))


@router.get("/runs")
@signed_in
async def run_list(request: Request, who: base.Console) -> Response:
    items = await call(dashboard.runs, base.engine(request), who.actor, who.org_id)
    return show(request, who, "console/runs.html", runs=items)


async def run_page(request: Request, who: base.Console, run_ref: str,
                   refused: Failed | None = None, done: dict[str, Any] | None = None
                   ) -> Response:
    data = await call(dashboard.progress, base.engine(request), who.actor,
                      who.org_id, run_ref)
    return base.show(request, "console/run.html", who.csrf,
                     status=refused.status if refused else 200, actor=who.actor, run=data,
                     failed=refused, done=done)


@router.get("/runs/{run_ref}")
@signed_in
async def run_detail(request: Request, who: base.Console, run_ref: str) -> Response:
    return await run_page(request, who, run_ref)


@router.post("/runs/{run_ref}/retry-failed")
@signed_in
async def retry_failed(request: Request, who: base.Console, run_ref: str) -> Response:
    """Queue every failed message of the run again, with a reason (``run retry`` without
    ``--invoice``); the page says what was queued and what was skipped, and why."""
    form = await base.posted(request, who.csrf)
    try:
        done = await call(message_actions.retry_failed, base.engine(request), who.actor,
                          who.org_id, run_ref, form.get("reason", ""))
    except AppError as exc:
        return await run_page(request, who, run_ref, failed("retry-failed", exc, form))
    return await run_page(request, who, run_ref, done=done)


@router.get("/runs/{run_ref}/progress")
@signed_in
async def run_progress(request: Request, who: base.Console, run_ref: str) -> Response:
    """The progress fragment htmx polls every two seconds while the run is not finished."""
    data = await call(dashboard.progress, base.engine(request), who.actor,
                      who.org_id, run_ref)
    return show(request, who, "console/_progress.html", run=data)


async def review_page(request: Request, who: base.Console, run_ref: str,
                      refused: Failed | None = None, error: str | None = None) -> Response:
    data = await call(run_review.review, base.engine(request), who.actor,
                      who.org_id, run_ref)
    may_decide = (who.actor.can(RUNS_APPROVE) and data["status"] == "held"
                  and data["started_by"] != who.actor.name and error is None)
    status = refused.status if refused else 200
    return base.show(request, "console/review.html", who.csrf, status=status,
                     actor=who.actor, review=data, may_decide=may_decide,
                     is_starter=data["started_by"] == who.actor.name, error=error,
                     failed=refused)


@router.get("/runs/{run_ref}/review")
@signed_in
async def run_review_page(request: Request, who: base.Console, run_ref: str) -> Response:
    return await review_page(request, who, run_ref)


@router.post("/runs/{run_ref}/decide")
@signed_in
async def decide(request: Request, who: base.Console, run_ref: str) -> Response:
    form = await base.posted(request, who.csrf)
    reason, decision = form.get("reason", ""), form.get("decision", "")
    db, org = base.engine(request), who.org_id
    try:
        if decision == "approve":
            await call(runs.approve, db, who.actor, org, run_ref, reason)
        elif decision == "reject":
            await call(run_review.reject, db, who.actor, org, run_ref, reason)
        else:
            raise AppError("choose approve or reject")
    except AppError as exc:
        page = await review_page(request, who, run_ref, error=exc.message)
        page.status_code = exc.status
        return page
    return base.redirect(f"/console/runs/{run_ref}/review")


async def _message_action(request: Request, who: base.Console, run_ref: str,
                          use_case: Callable[..., Any], name: str) -> Response:
    form = await base.posted(request, who.csrf)
    back = "alerts" if form.get("from") == "alerts" else "review"
    try:
        await call(use_case, base.engine(request), who.actor, who.org_id, run_ref,
                   form.get("invoice", ""), form.get("reason", ""))
    except AppError as exc:
        refused = failed(f"{name}-{form.get('invoice', '')}", exc, form)
        if back == "alerts":
            return await alerts_page(request, who, refused)
        return await review_page(request, who, run_ref, refused)
    return base.redirect("/console/alerts" if back == "alerts"
                         else f"/console/runs/{run_ref}/review")


@router.post("/runs/{run_ref}/set-aside")
@signed_in
async def set_aside(request: Request, who: base.Console, run_ref: str) -> Response:
    """Set one message of the run aside with a reason (from the held-run review or a guard
    alert: ``from`` says which page to go back to)."""
    return await _message_action(request, who, run_ref, message_actions.set_aside,
                                 "set-aside")


@router.post("/runs/{run_ref}/retry")
@signed_in
async def retry(request: Request, who: base.Console, run_ref: str) -> Response:
    """Queue a set-aside message again, with a reason: the next send checks it afresh."""
    return await _message_action(request, who, run_ref, message_actions.retry, "retry")


async def alerts_page(request: Request, who: base.Console, refused: Failed | None = None
                      ) -> Response:
    db, org = base.engine(request), who.org_id
    items = await call(records.alert_list, db, who.actor, org)
    reports = await call(misdelivery.reports, db, who.actor, org)
    return base.show(request, "console/alerts.html", who.csrf,
                     status=refused.status if refused else 200, actor=who.actor,
                     alerts=items, reports=reports, failed=refused,
                     error=refused.message if refused else None)
