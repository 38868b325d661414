"""The FastAPI application: ``create_app(engine)``; ``sealbill serve`` runs it on uvicorn."""

from __future__ import annotations

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


def create_app(engine: Engine, *, rate: float = 50.0, burst: int = 100) -> FastAPI:
    """The API on ``engine``; ``rate``/``burst``: each key's request budget (per process)."""
    app = FastAPI(
        title="sealbill API", version="1.0.0",
        description="Billing that sends each invoice to the people entitled to it. "
                    "Authenticate with `Authorization: Bearer sbk_...`; send "
                    "`Idempotency-Key` on POST; errors are RFC 9457 problem details.",
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.engine = engine
    app.add_middleware(ApiGuard, engine=engine, buckets=TokenBuckets(rate, burst))
    problems.install(app)
    for module in (routes_setup, routes_customers, routes_billing, routes_bounces,
                   routes_incidents, routes_ledger):
        app.include_router(module.router)
    return app
