"""One middleware in front of every ``/v1`` route: authenticate the key, limit its rate, and
make its POSTs idempotent.

- Authentication: ``Authorization: Bearer sbk_…`` (or ``X-API-Key``); the actor is put on
  ``request.state`` for the routes; a missing or bad key is a 401 from the route dependency.
  A good key is remembered for :data:`AUTH_CACHE_SECONDS` (a revocation takes effect within
  that delay); a bad one is checked against the database every time.
- Rate limit: a token bucket per key (``rate`` requests per second, ``burst`` at once), kept
  in the database so that every server process shares it (:class:`TokenBuckets`); an empty
  bucket answers 429 with ``Retry-After`` (whole seconds).
- Idempotency: a POST with ``Idempotency-Key`` first inserts ``(key id, Idempotency-Key)``
  into ``idempotency_keys`` (unique): the request that inserts it runs, the others wait for
  its response and replay it; the same key with another body (method, path, body hashed) is
  a 409. So two requests sent at once with one key have one effect. A 5xx is not kept (the
  client may retry).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from sealbill.api.problems import problem
from sealbill.app import operators
from sealbill.app.errors import Unauthenticated
from sealbill.store import rate_limits
from sealbill.store.db import read_transaction
from sealbill.store.schema import idempotency_keys

WAIT_SECONDS = 30.0


class TokenBuckets:
    """Each key's request budget (``rate`` a second, ``burst`` at once), shared by every
    server process on the database (:mod:`sealbill.store.rate_limits`). To spare the
    database a write per request, this process takes a lease of up to ``rate`` ×
    :data:`LEASE_SECONDS` tokens at a time and spends it within that delay; the processes
    together still never exceed the key's budget."""

    LEASE_SECONDS = 0.1

    def __init__(self, rate: float, burst: int, engine: Engine) -> None:
        self.rate, self.burst, self.engine = rate, burst, engine
        self.lease = max(1, min(burst, int(rate * self.LEASE_SECONDS)))
        self._leases: dict[int, tuple[int, float]] = {}  # key id -> (tokens left, until)
        self._lock = threading.Lock()

    def take_leased(self, key_id: int) -> bool:
        """A token of this process's lease, if it holds one still valid (no I/O)."""
        now = time.time()
        with self._lock:
            left, until = self._leases.get(key_id, (0, 0.0))
            if left > 0 and now < until:
                self._leases[key_id] = (left - 1, until)
                return True
            return False

    def take(self, key_id: int) -> float:
        """0 when a request may go now, else the seconds until one may (one statement)."""
        if self.take_leased(key_id):
            return 0.0
        for _ in range(3):
            now = time.time()
            granted, left = rate_limits.take(self.engine, key_id, now=now, rate=self.rate,
                                             burst=self.burst, want=self.lease)
            wait = (1 - left) / self.rate
            # Stamped before a concurrent update from another thread or process committed,
            # this statement saw no time pass; when the next token is due within a lease's
            # delay, ask again with a fresh stamp rather than answer 429 to a key that is
            # within its limit.
            if granted or wait > self.LEASE_SECONDS:
                break
        if granted == 0:
            return wait
        with self._lock:
            if len(self._leases) > 10_000:
                self._leases.clear()
            self._leases[key_id] = (granted - 1, now + self.LEASE_SECONDS)
        return 0.0


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


AUTH_CACHE_SECONDS = 5.0


class ApiGuard(BaseHTTPMiddleware):
    def __init__(self, app: Any, engine: Engine, buckets: TokenBuckets) -> None:
        super().__init__(app)
        self.engine, self.buckets = engine, buckets
        # key -> (actor, key id, until): a revoked key stops working within this delay.
        self._known: dict[str, tuple[Any, int, float]] = {}

    def _authenticate(self, key: str) -> tuple[Any, int]:
        cached = self._known.get(key)
        now = time.monotonic()
        if cached is not None and cached[2] > now:
            return cached[0], cached[1]
        actor, key_id = operators.authenticate(self.engine, key, "api")
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (actor, key_id, now + AUTH_CACHE_SECONDS)
        return actor, key_id

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.actor = None
        if not request.url.path.startswith("/v1"):
            return await call_next(request)
        key = _bearer(request)
        if key:
            cached = self._known.get(key)
            if cached is not None and cached[2] > time.monotonic():
                actor, key_id = cached[0], cached[1]  # no thread hop for a known key
            else:
                try:
                    actor, key_id = await anyio.to_thread.run_sync(self._authenticate, key)
                except Unauthenticated:
                    actor, key_id = None, None
            if actor is not None:
                request.state.actor = actor
                wait = 0.0 if key_id is None or self.buckets.take_leased(key_id) else \
                    await anyio.to_thread.run_sync(self.buckets.take, key_id)
                if wait > 0:
                    return problem(429, "Too many requests",
                                   f"rate limit of this key: {self.buckets.rate}/s",
                                   headers={"Retry-After": str(max(1, math.ceil(wait)))})
                idem = request.headers.get("idempotency-key")
                if request.method == "POST" and idem and key_id is not None:
                    return await self._idempotent(request, call_next, key_id, idem)
        return await call_next(request)

    async def _idempotent(self, request: Request,
                          call_next: Callable[[Request], Awaitable[Response]],
                          key_id: int, idem: str) -> Response:
        if len(idem) > 200:
            return problem(400, "Bad request", "Idempotency-Key is longer than 200 characters",
                           [{"field": "Idempotency-Key", "message": "at most 200 characters"}])
        body = await request.body()
        digest = hashlib.sha256(b"%s %s\n" % (request.method.encode(),
                                              request.url.path.encode()) + body).hexdigest()
        first = await anyio.to_thread.run_sync(self._claim, key_id, idem, digest)
        if not first:
            return await self._replay(key_id, idem, digest)
        response = await call_next(request)
        content = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        await anyio.to_thread.run_sync(self._store, key_id, idem, response.status_code,
                                       content, response.headers.get("content-type", ""))
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(content, status_code=response.status_code, headers=headers)

    def _claim(self, key_id: int, idem: str, digest: str) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(idempotency_keys).values(
                    api_key_id=key_id, key=idem, request_sha256=digest,
                    created_at=datetime.now(UTC)))
            return True
        except sa.exc.IntegrityError:
            return False

    def _store(self, key_id: int, idem: str, status: int, content: bytes,
               media_type: str) -> None:
        where = (idempotency_keys.c.api_key_id == key_id, idempotency_keys.c.key == idem)
        with self.engine.begin() as conn:
            if status >= 500:  # not an answer worth replaying: let the client retry
                conn.execute(sa.delete(idempotency_keys).where(*where))
                return
            conn.execute(sa.update(idempotency_keys).where(*where).values(
                status_code=status,
                response={"body": content.decode("utf-8", "replace"),
                          "media_type": media_type}))

    def _read(self, key_id: int, idem: str) -> Any:
        with read_transaction(self.engine) as conn:
            return conn.execute(sa.select(idempotency_keys).where(
                idempotency_keys.c.api_key_id == key_id,
                idempotency_keys.c.key == idem)).first()

    async def _replay(self, key_id: int, idem: str, digest: str) -> Response:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            row = await anyio.to_thread.run_sync(self._read, key_id, idem)
            if row is None:  # the first attempt failed (5xx) and was forgotten
                return problem(409, "Conflict", "the first request with this "
                               "Idempotency-Key failed; send it again")
            if row.request_sha256 != digest:
                return problem(409, "Conflict", "this Idempotency-Key was used with another "
                               "request", [{"field": "Idempotency-Key",
                                            "message": "reused with a different body"}])
            if row.status_code is not None:
                data = row.response if isinstance(row.response, dict) else json.loads(
                    row.response)
                return Response(data["body"].encode(), status_code=row.status_code,
                                media_type=data["media_type"] or None,
                                headers={"Idempotent-Replayed": "true"})
            if time.monotonic() > deadline:
                return problem(409, "Conflict", "a request with this Idempotency-Key is "
                               "still in progress; retry later")
            await anyio.sleep(0.05)
