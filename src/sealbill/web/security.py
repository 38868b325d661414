"""Security of every page: headers (a strict Content-Security-Policy), cookies, CSRF tokens.

Invariants:
- every response of the web app carries the CSP and the other headers; the CSP allows scripts
  and styles from this origin only (no inline script or style, no eval), so a name containing
  HTML that escaped the templates' autoescaping still could not run;
- every POST carries a CSRF token equal to its session's (or, before sign-in, to the value of
  the ``sb_pre`` cookie, double-submit): a POST without it, or with another, is refused (403)
  before the handler runs;
- cookies are ``HttpOnly``, ``SameSite=Strict`` and ``Secure``, scoped to their path.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Sign-in links and codes travel in URLs: never in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
PRE_COOKIE = "sb_pre"


class SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app: object, secure: bool) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.secure = secure

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        if self.secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if PRE_COOKIE not in request.cookies:
            set_cookie(response, PRE_COOKIE, pre_token(request), path="/", secure=self.secure)
        return response


def pre_token(request: Request) -> str:
    """The pre-session CSRF value of this browser (made once per request if missing)."""
    value = request.cookies.get(PRE_COOKIE) or getattr(request.state, "pre_token", None)
    if not value:
        value = secrets.token_urlsafe(24)
        request.state.pre_token = value
    return str(value)


def set_cookie(response: Response, name: str, value: str, *, path: str, secure: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, path=path, secure=secure, httponly=True,
                        samesite="strict", max_age=max_age)


async def require_csrf(request: Request, expected: str | None) -> dict[str, str]:
    """The posted form, once its CSRF token matched ``expected`` (the session's token) or,
    without a session, the ``sb_pre`` cookie; 403 otherwise."""
    form = await request.form()
    given = str(form.get("csrf") or "")
    wanted = expected or request.cookies.get(PRE_COOKIE) or ""
    if not given or not wanted or not hmac.compare_digest(given, wanted):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def derived_token(key: bytes, session_secret: str) -> str:
    """The CSRF token of a session whose secret is ``session_secret`` (an HMAC under the
    installation key: unguessable without the cookie, and different for every session)."""
    return hmac.new(key, b"csrf|" + session_secret.encode(), "sha256").hexdigest()


def safe_next(path: str | None, default: str) -> str:
    """A local path to go back to (never another site: ``//evil`` or ``https://…``)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default
