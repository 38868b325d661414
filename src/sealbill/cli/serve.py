"""``sealbill serve``: the HTTP API on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from sealbill.cli.common import DbOption, engine_for


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    rate: Annotated[float, typer.Option(help="Requests per second per API key.")] = 50.0,
    burst: Annotated[int, typer.Option(help="Requests at once per API key.")] = 100,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json, docs at /docs), the operator
    console (/console) and the customer portal (/portal/ORG/).

    Example: sealbill serve --db sqlite:///sealbill.sqlite --port 8000
    """
    import uvicorn

    from sealbill.api.app import create_app
    from sealbill.store.migrate import upgrade
    from sealbill.web import mount

    engine = engine_for(db)
    upgrade(engine)
    app = create_app(engine, rate=rate, burst=burst)
    mount(app, engine)
    uvicorn.run(app, host=host, port=port, log_level="warning")
