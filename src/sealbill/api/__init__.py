"""The HTTP API (``sealbill serve``): FastAPI routes over :mod:`sealbill.app`, under ``/v1``.

Nothing here holds a business rule: a route parses the request, calls one use case with the
key's actor and returns its result. Conventions: API keys as ``Authorization: Bearer sbk_…``;
``Idempotency-Key`` on POST; RFC 9457 problem details; cursor pages; ``ETag``/``If-Match``;
per-key rate limits with ``429`` and ``Retry-After``.
"""
