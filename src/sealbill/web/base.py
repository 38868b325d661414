"""What every web handler shares: the engine and configuration, the reader's language, the
console's and the portal's sessions, and the rendering of a page with its CSRF token.

Console sessions are the application layer's (:mod:`sealbill.app.sessions`: password + TOTP,
the operator's role in the organization, stored hashed); their CSRF token is derived from the
session's secret with the installation key (nothing more to store, and it dies with the
session). Portal sessions are :mod:`sealbill.store.parties.portal_sessions`, with a stored token.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sealbill.app import sessions
from sealbill.app.context import Actor
from sealbill.app.errors import NotFound, Unauthenticated
from sealbill.app.portal import PortalUser, org_by_slug, portal_user
from sealbill.store.parties import portal_sessions
from sealbill.web import render
from sealbill.web.config import WebConfig
from sealbill.web.security import derived_token, pre_token, require_csrf

CONSOLE_COOKIE = "sb_console"
PORTAL_COOKIE = "sb_portal"
LANG_COOKIE = "sb_lang"


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def config(request: Request) -> WebConfig:
    return request.app.state.web_config  # type: ignore[no-any-return]


def language(request: Request, chosen_at_sign_in: str | None = None) -> str:
    """The reader's choice (the language form's cookie), else the session's language, else
    the browser's preference."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in render.LANGUAGES:
        return str(chosen)
    if chosen_at_sign_in in render.LANGUAGES:
        return str(chosen_at_sign_in)
    accept = request.headers.get("accept-language", "").lower()
    return "fr" if accept.startswith("fr") else "en"


@dataclass(frozen=True)
class Console:
    actor: Actor
    csrf: str

    @property
    def org_id(self) -> int:
        assert self.actor.org_id is not None  # a console session is in one organization
        return self.actor.org_id


@dataclass(frozen=True)
class Portal:
    session: portal_sessions.PortalSession
    user: PortalUser
    slug: str

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


async def console(request: Request) -> Console | None:
    """The signed-in operator of this request, or None (no, ended or withdrawn session)."""
    token = request.cookies.get(CONSOLE_COOKIE)
    if not token:
        return None
    try:
        actor = await anyio.to_thread.run_sync(sessions.session_actor, engine(request), token)
    except Unauthenticated:
        return None
    return Console(actor, derived_token(config(request).secret_key, token))


async def portal(request: Request, slug: str) -> Portal | None:
    db = engine(request)
    session = await anyio.to_thread.run_sync(
        portal_sessions.load, db, request.cookies.get(PORTAL_COOKIE))
    if session is None:
        return None
    try:
        org_id, _ = await anyio.to_thread.run_sync(org_by_slug, db, slug)
        user = await anyio.to_thread.run_sync(portal_user, db, session.org_id,
                                              session.contact_id, session.account_id)
    except (Unauthenticated, NotFound):
        return None
    if org_id != session.org_id:
        return None
    return Portal(session, user, slug)


def show(request: Request, template: str, csrf: str | None = None, *, status: int = 200,
         locale: str | None = None, **context: Any) -> HTMLResponse:
    """The page; its forms carry ``csrf`` (the session's token), or before sign-in the
    pre-session token."""
    return render.page(template, {"csrf": csrf or pre_token(request),
                                  "pre_csrf": pre_token(request),
                                  "path": request.url.path, **context},
                       language(request, locale), status)


async def posted(request: Request, csrf: str | None) -> dict[str, str]:
    return await require_csrf(request, csrf)


def as_route(wrapper: Callable[..., Awaitable[Response]], handler: Callable[..., Any],
             extra: tuple[str, type] | None = None) -> Callable[..., Awaitable[Response]]:
    """``wrapper`` with the signature FastAPI should see: the handler's parameters without
    ``who`` (which the wrapper supplies), plus ``extra`` (a path parameter it consumes)."""
    sig = inspect.signature(handler)
    params = [p for name, p in sig.parameters.items() if name != "who"]
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
    if extra is not None:
        rest.insert(0, inspect.Parameter(extra[0], inspect.Parameter.KEYWORD_ONLY,
                                         annotation=extra[1]))
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[params[0], *rest])
    wrapper.__name__ = handler.__name__
    return wrapper


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
