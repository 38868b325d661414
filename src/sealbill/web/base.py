"""What every web handler shares: the engine and configuration, the reader's language, the
sessions of the console and the portal, and the rendering of a page with its CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealbill.app.console_auth import console_actor
from sealbill.app.context import Actor
from sealbill.app.errors import Unauthenticated
from sealbill.app.portal import PortalUser, portal_user
from sealbill.store import web_sessions
from sealbill.web import render
from sealbill.web.config import WebConfig
from sealbill.web.security import pre_token, require_csrf

CONSOLE_COOKIE = "sb_console"
PORTAL_COOKIE = "sb_portal"
LANG_COOKIE = "sb_lang"


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def config(request: Request) -> WebConfig:
    return request.app.state.web_config  # type: ignore[no-any-return]


def language(request: Request, session: web_sessions.WebSession | None = None) -> str:
    """The reader's choice (the language form's cookie), else the session's language (chosen
    at sign-in), else the browser's preference."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in render.LANGUAGES:
        return str(chosen)
    if session is not None:
        return session.locale
    accept = request.headers.get("accept-language", "").lower()
    return "fr" if accept.startswith("fr") else "en"


@dataclass(frozen=True)
class Console:
    session: web_sessions.WebSession
    actor: Actor


@dataclass(frozen=True)
class Portal:
    session: web_sessions.WebSession
    user: PortalUser
    slug: str


async def console(request: Request) -> Console | None:
    """The signed-in operator of this request, or None (no, ended or withdrawn session)."""
    db = engine(request)
    session = await anyio.to_thread.run_sync(
        web_sessions.load, db, request.cookies.get(CONSOLE_COOKIE), "operator")
    if session is None or session.operator_id is None:
        return None
    try:
        actor = await anyio.to_thread.run_sync(console_actor, db, session.operator_id,
                                               session.org_id)
    except Unauthenticated:
        return None
    return Console(session, actor)


async def portal(request: Request, slug: str) -> Portal | None:
    db = engine(request)
    session = await anyio.to_thread.run_sync(
        web_sessions.load, db, request.cookies.get(PORTAL_COOKIE), "portal")
    if session is None or session.contact_id is None or session.account_id is None:
        return None
    try:
        user = await anyio.to_thread.run_sync(portal_user, db, session.org_id,
                                              session.contact_id, session.account_id)
    except Unauthenticated:
        return None
    from sealbill.app.portal import org_by_slug

    org_id, _ = await anyio.to_thread.run_sync(org_by_slug, db, slug)
    if org_id != session.org_id:
        return None
    return Portal(session, user, slug)


def show(request: Request, template: str, session: web_sessions.WebSession | None = None,
         status: int = 200, **context: Any) -> HTMLResponse:
    csrf = session.csrf_token if session is not None else pre_token(request)
    return render.page(template, {"csrf": csrf, "pre_csrf": pre_token(request),
                                  "path": request.url.path, **context},
                       language(request, session), status)


async def posted(request: Request, session: web_sessions.WebSession | None) -> dict[str, str]:
    return await require_csrf(request, session.csrf_token if session else None)


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
