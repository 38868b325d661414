"""The FastAPI application: ``create_app(engine)``; ``sealbill serve`` runs it on uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from sealbill.api import (
    problems,
    routes_billing,
    routes_bounces,
    routes_customers,
    routes_incidents,
    routes_ledger,
    routes_setup,
)
from sealbill.api.guard import ApiGuard, TokenBuckets
from sealbill.app.run_sends import BackgroundSends


def create_app(engine: Engine, *, rate: float = 50.0, burst: int = 100) -> FastAPI:
    """The API on ``engine``; ``rate``/``burst``: each key's request budget; run sends go to
    the server's background senders (:class:`BackgroundSends`), waited for at shutdown."""
    sends = BackgroundSends()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        sends.shutdown()

    app = FastAPI(
        lifespan=lifespan, title="sealbill API", version="1.0.0",
        description="Billing that sends each invoice to the people entitled to it. "
                    "Authenticate with `Authorization: Bearer sbk_...`; send "
                    "`Idempotency-Key` on POST; errors are RFC 9457 problem details.",
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.engine = engine
    app.state.sends = sends
    app.add_middleware(ApiGuard, engine=engine, buckets=TokenBuckets(rate, burst, engine))
    problems.install(app)
    for module in (routes_setup, routes_customers, routes_billing, routes_bounces,
                   routes_incidents, routes_ledger):
        app.include_router(module.router)
    return app
