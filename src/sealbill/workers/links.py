"""Expire verification links: a link past its expiry, never used, is revoked (recorded why).

The portal already refuses an expired link when it is opened; revoking it as well keeps the
table saying what is live (``revoked_at`` set once, never changed again)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.store.schema import verification_tokens as tokens


def expire(engine: Engine, now: datetime) -> int:
    """Revoke every unused, unrevoked link whose ``expires_at`` is before ``now``."""
    with engine.begin() as conn:
        result = conn.execute(sa.update(tokens).where(
            tokens.c.expires_at < now, tokens.c.used_at.is_(None),
            tokens.c.revoked_at.is_(None),
        ).values(revoked_at=now, revoked_reason="expired"))
        return int(result.rowcount or 0)
