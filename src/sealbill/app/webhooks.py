"""Webhooks following the Standard Webhooks specification (``standardwebhooks``).

Events: ``invoice.finalized``, ``invoice.delivered``, ``run.held``, ``run.halted``,
``guard.violation``, ``contact.verified``, ``incident.opened``, ``misdelivery.reported``.
Invariants:
- :func:`emit` writes one outbox row per subscribed endpoint in the caller's transaction, keyed
  by ``(endpoint, event_key)``: an event is queued once per endpoint, whatever retries emit it;
- :func:`deliver` signs each message (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``: HMAC-SHA256 over ``id.timestamp.body`` with the endpoint's secret),
  POSTs it, and on anything but a 2xx retries with backoff (:data:`BACKOFF`) until it gives up;
- an endpoint URL is https (http only to loopback with the development flag) and never
  reaches a private, link-local or reserved address: checked when the endpoint is added and
  again, on the resolved addresses, before every delivery.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from standardwebhooks import Webhook

from sealbill.app import audit, ids
from sealbill.app.audit import jsonable
from sealbill.app.context import ORG_WRITE, Actor
from sealbill.app.errors import Invalid, Problem
from sealbill.store.schema import webhook_endpoints, webhook_messages

EVENTS = ("invoice.finalized", "invoice.delivered", "run.held", "run.halted",
          "guard.violation", "contact.verified", "incident.opened",
          "misdelivery.reported")
BACKOFF = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
           timedelta(hours=2), timedelta(hours=5), timedelta(hours=10))
Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


def url_problem(url: str, *, allow_loopback: bool, resolver: Resolver = _resolve) -> str | None:
    """Why sealbill will not POST to ``url``, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL"
    try:
        addresses = [ipaddress.ip_address(a) for a in resolver(parts.hostname)]
    except (OSError, ValueError) as exc:
        return f"cannot resolve {parts.hostname}: {exc}"
    if not addresses:
        return f"{parts.hostname} has no address"
    if all(a.is_loopback for a in addresses) and allow_loopback:
        return None
    if parts.scheme != "https":
        return "must use https (http only to loopback, with the development flag)"
    for address in addresses:
        if address.is_private or address.is_loopback or address.is_link_local or \
                address.is_reserved or address.is_multicast or address.is_unspecified:
            return f"{parts.hostname} resolves to a non-public address ({address})"
    return None


def add_endpoint(engine: Engine, actor: Actor, org_id: int, url: str, events: list[str], *,
                 allow_loopback: bool = False, resolver: Resolver = _resolve
                 ) -> dict[str, Any]:
    """Subscribe ``url`` to ``events`` (or ``["*"]``); the signing secret is returned once."""
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    problems = [Problem("events", f"unknown event {e!r}; one of {', '.join(EVENTS)}")
                for e in events if e != "*" and e not in EVENTS]
    if not events:
        problems.append(Problem("events", "subscribe to at least one event (or *)"))
    if (problem := url_problem(url, allow_loopback=allow_loopback, resolver=resolver)):
        problems.append(Problem("url", problem))
    if problems:
        raise Invalid(f"webhook endpoint: {len(problems)} problem(s)", problems)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with engine.begin() as conn:
        row_id = conn.execute(sa.insert(webhook_endpoints).values(
            organization_id=org_id, url=url, secret=secret, event_types=sorted(set(events)),
            allow_loopback=allow_loopback, created_at=datetime.now(UTC)
        ).returning(webhook_endpoints.c.id)).scalar_one()
        public = ids.encode(conn, org_id, "webhook", int(row_id))
        audit.record(conn, actor, org_id, "webhook.create", "webhook", public,
                     after={"url": url, "events": events})
    return {"id": public, "url": url, "events": sorted(set(events)), "secret": secret}


def emit(conn: Connection, org_id: int, event_type: str, event_key: str,
         data: dict[str, Any]) -> int:
    """Queue the event for every endpoint of the organization subscribed to it, in the
    caller's transaction; returns how many messages were queued."""
    assert event_type in EVENTS, event_type
    now = datetime.now(UTC)
    endpoints = conn.execute(sa.select(webhook_endpoints.c.id, webhook_endpoints.c.event_types)
                             .where(webhook_endpoints.c.organization_id == org_id,
                                    webhook_endpoints.c.disabled_at.is_(None))).all()
    queued = 0
    for endpoint_id, types in endpoints:
        if "*" not in types and event_type not in types:
            continue
        exists = conn.execute(sa.select(webhook_messages.c.id).where(
            webhook_messages.c.endpoint_id == endpoint_id,
            webhook_messages.c.event_key == event_key)).first()
        if exists is not None:
            continue
        msg_id = "msg_" + secrets.token_urlsafe(18)
        conn.execute(sa.insert(webhook_messages).values(
            organization_id=org_id, endpoint_id=endpoint_id, msg_id=msg_id,
            event_key=event_key, event_type=event_type, created_at=now, attempts=0,
            next_attempt_at=now,
            payload={"type": event_type, "timestamp": now.isoformat(),
                     "data": jsonable(data)}))
        queued += 1
    return queued


def deliver(engine: Engine, *, now: datetime | None = None,
            client: httpx.Client | None = None, resolver: Resolver = _resolve,
            limit: int = 100) -> dict[str, int]:
    """One pass over the due messages: sign, POST, record the outcome, schedule retries."""
    now = now or datetime.now(UTC)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with engine.begin() as conn:
        due = conn.execute(
            sa.select(webhook_messages, webhook_endpoints.c.url, webhook_endpoints.c.secret,
                      webhook_endpoints.c.allow_loopback)
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_messages.c.endpoint_id)
            .where(webhook_messages.c.delivered_at.is_(None),
                   webhook_messages.c.failed_at.is_(None),
                   webhook_messages.c.next_attempt_at <= now)
            .order_by(webhook_messages.c.id).limit(limit)).all()
    http = client or httpx.Client(timeout=10, follow_redirects=False)
    try:
        for row in due:
            status, error = _post(http, row, resolver)
            counts[_record(engine, row, status, error, now)] += 1
    finally:
        if client is None:
            http.close()
    return counts


def _post(http: httpx.Client, row: Any, resolver: Resolver) -> tuple[int | None, str | None]:
    problem = url_problem(row.url, allow_loopback=row.allow_loopback, resolver=resolver)
    if problem:
        return None, f"refused: {problem}"
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True)
    sent_at = datetime.now(UTC)
    signature = Webhook(row.secret).sign(row.msg_id, sent_at, body)
    headers = {"webhook-id": row.msg_id, "webhook-timestamp": str(int(sent_at.timestamp())),
               "webhook-signature": signature, "content-type": "application/json"}
    try:
        response = http.post(row.url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else response.text[:200]


def _record(engine: Engine, row: Any, status: int | None, error: str | None,
            now: datetime) -> str:
    attempts = int(row.attempts) + 1
    values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        values["delivered_at"], outcome = datetime.now(UTC), "delivered"
    elif attempts > len(BACKOFF):
        values["failed_at"], outcome = now, "failed"
    else:
        values["next_attempt_at"], outcome = now + BACKOFF[attempts - 1], "retrying"
    with engine.begin() as conn:
        conn.execute(sa.update(webhook_messages).where(webhook_messages.c.id == row.id)
                     .values(**values))
    return outcome


def messages(engine: Engine, actor: Actor, org_id: int, *, limit: int = 100,
             cursor: str | None = None) -> dict[str, Any]:
    """The outbox, oldest first, a page at a time (``cursor``: the ``msg_id`` the previous
    page ended with, its ``next_cursor``)."""
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    query = sa.select(webhook_messages).where(webhook_messages.c.organization_id == org_id)
    if cursor:
        query = query.where(webhook_messages.c.id > sa.select(webhook_messages.c.id).where(
            webhook_messages.c.organization_id == org_id,
            webhook_messages.c.msg_id == cursor).scalar_subquery())
    with engine.begin() as conn:
        rows = conn.execute(query.order_by(webhook_messages.c.id).limit(limit + 1)).all()
    items = [{"msg_id": r.msg_id, "type": r.event_type, "attempts": r.attempts,
              "delivered_at": r.delivered_at, "failed_at": r.failed_at,
              "last_status": r.last_status, "last_error": r.last_error} for r in rows[:limit]]
    return {"items": items,
            "next_cursor": items[-1]["msg_id"] if len(rows) > limit and items else None}
