"""Server-side sessions of the web console and the customer portal.

Invariants: the browser holds a 256-bit random secret; the table holds its SHA-256 only, so a
copy of the database opens no session; a session is valid until ``expires_at`` (absolute) and
while idle less than ``idle``; ending a session (sign-out) is final. A portal session names one
contact and one account; an operator session names an operator and one organization.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.schema import web_sessions

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class WebSession:
    id: int
    kind: str
    org_id: int
    operator_id: int | None
    contact_id: int | None
    account_id: int | None
    csrf_token: str
    locale: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(engine: Engine, *, kind: str, org_id: int, operator_id: int | None = None,
           contact_id: int | None = None, account_id: int | None = None,
           locale: str = "en") -> str:
    """A new session; returns the secret for the cookie (shown once, stored hashed)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(web_sessions).values(
            token_sha256=_digest(secret), kind=kind, organization_id=org_id,
            operator_id=operator_id, contact_id=contact_id, account_id=account_id,
            csrf_token=secrets.token_urlsafe(32), locale=locale if locale in ("en", "fr")
            else "en", created_at=now, last_seen_at=now, expires_at=now + LIFETIME))
    return secret


def load(engine: Engine, secret: str | None, kind: str) -> WebSession | None:
    """The live session of that kind behind the cookie, touched; None otherwise."""
    if not secret:
        return None
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(sa.select(web_sessions).where(
            web_sessions.c.token_sha256 == _digest(secret), web_sessions.c.kind == kind)).first()
        if row is None or row.ended_at is not None or row.expires_at <= now \
                or row.last_seen_at + IDLE <= now:
            return None
        conn.execute(sa.update(web_sessions).where(web_sessions.c.id == row.id)
                     .values(last_seen_at=now))
    return WebSession(int(row.id), row.kind, int(row.organization_id), row.operator_id,
                      row.contact_id, row.account_id, row.csrf_token, row.locale)


def end(engine: Engine, session_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(web_sessions).where(web_sessions.c.id == session_id,
                                                   web_sessions.c.ended_at.is_(None))
                     .values(ended_at=datetime.now(UTC)))
