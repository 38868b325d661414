"""Server-side sessions of the customer portal (opened by a magic link).

Invariants: the browser holds a 256-bit random secret; the table holds its SHA-256 only, so a
copy of the database opens no session; a session is valid until ``expires_at`` (absolute) and
while idle less than ``IDLE``; ending it (sign-out) is final; it names one contact and one
account, and nothing else.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.schema import portal_sessions

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class PortalSession:
    id: int
    org_id: int
    contact_id: int
    account_id: int
    csrf_token: str
    locale: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(engine: Engine, *, org_id: int, contact_id: int, account_id: int,
           locale: str = "en") -> str:
    """A new session; returns the secret for the cookie (shown once, stored hashed)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(portal_sessions).values(
            organization_id=org_id, token_sha256=_digest(secret), contact_id=contact_id,
            account_id=account_id, csrf_token=secrets.token_urlsafe(32),
            locale=locale if locale in ("en", "fr") else "en", created_at=now,
            last_seen_at=now, expires_at=now + LIFETIME))
    return secret


def load(engine: Engine, secret: str | None) -> PortalSession | None:
    """The live session behind the cookie, touched; None otherwise."""
    if not secret:
        return None
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(sa.select(portal_sessions).where(
            portal_sessions.c.token_sha256 == _digest(secret))).first()
        if row is None or row.ended_at is not None or row.expires_at <= now \
                or row.last_seen_at + IDLE <= now:
            return None
        conn.execute(sa.update(portal_sessions).where(portal_sessions.c.id == row.id)
                     .values(last_seen_at=now))
    return PortalSession(int(row.id), int(row.organization_id), int(row.contact_id),
                         int(row.account_id), row.csrf_token, row.locale)


def end(engine: Engine, session_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(portal_sessions).where(portal_sessions.c.id == session_id,
                                                      portal_sessions.c.ended_at.is_(None))
                     .values(ended_at=datetime.now(UTC)))
