"""The web console (``/console``) and the customer portal (``/portal/{organization}``).

Served by the same process as the HTTP API: ``create_web_app`` builds a Starlette application
that the API mounts at ``/`` after its own routes (``app.mount("/", create_web_app(...))``), or
that runs alone (``sealbill.web.serve``). Server-rendered Jinja2 pages, htmx (vendored in
``static/``) for the run progress, one stylesheet, no inline script or style; sessions,
CSRF and headers in :mod:`sealbill.web.security`. Every rule lives in :mod:`sealbill.app`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sealbill.app.errors import AppError, Unauthenticated
from sealbill.web import (
    base,
    console,
    console_accounts,
    console_catalog,
    console_incidents,
    console_records,
    portal_routes,
)
from sealbill.web.config import WebConfig
from sealbill.web.security import SecurityHeaders, safe_next, set_cookie

STATIC = Path(__file__).parent / "static"
ROUTERS = (console.router, console_accounts.router, console_records.router,
           console_catalog.router, console_incidents.router, portal_routes.router)


def create_web_app(engine: Engine, config: WebConfig) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.web_config = config
    app.add_middleware(SecurityHeaders, secure=config.secure_cookies)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/")
    async def root() -> Response:
        return base.redirect("/console/")

    @app.post("/lang")
    async def choose_language(request: Request) -> Response:
        # The language form carries the pre-session token: it works signed in or not, on
        # every page, whatever the path of the session cookie.
        form = await base.posted(request, None)
        lang = form.get("lang") if form.get("lang") in ("en", "fr") else "en"
        response = base.redirect(safe_next(form.get("next"), "/"))
        set_cookie(response, base.LANG_COOKIE, str(lang), path="/",
                   secure=config.secure_cookies, max_age=365 * 86400)
        return response

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        if isinstance(exc, Unauthenticated) and request.url.path.startswith("/console"):
            return base.show(request, "console/sign_in.html", status=401, error=exc.message)
        return base.show(request, "error.html", status=exc.status, message=exc.message,
                         problems=[str(p) for p in exc.problems])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return base.show(request, "error.html", status=exc.status_code,
                         message=str(exc.detail), problems=[])

    return app


def mount(api: FastAPI, engine: Engine, config: WebConfig | None = None) -> None:
    """Serve the console and the portal from the API's process: mounted at ``/`` after the
    API's own routes (``/v1``, ``/openapi.json``, ``/docs`` keep answering first)."""
    api.mount("/", create_web_app(engine, config or WebConfig.from_environment()))


__all__ = ["WebConfig", "create_web_app", "mount"]
