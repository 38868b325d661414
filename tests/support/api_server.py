"""The API on a real uvicorn server on loopback, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy.engine import Engine

from sealbill.api.app import create_app
from sealbill.mail.sink import free_port


@contextmanager
def serving(engine: Engine, **options: float) -> Iterator[str]:
    """Yield the base URL while uvicorn serves the API on ``engine``."""
    port = free_port()
    app = create_app(engine, **options)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
