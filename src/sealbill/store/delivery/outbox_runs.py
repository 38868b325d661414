"""The run's outbox as a whole: its messages counted by status, those an operator set aside,
and the requeue of what the guard stopped or retries gave up on (per-message reads and writes
are in :mod:`sealbill.store.delivery.outbox`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.delivery.outbox import now
from sealbill.store.schema import outbox


def operator_set_aside(conn: Connection, org_id: int, run_id: int) -> set[int]:
    """Outbox ids of the run's messages an operator set aside (or confirmed as set aside)."""
    return {int(i) for i in conn.execute(sa.select(outbox.c.id).where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
        outbox.c.status == "set_aside", outbox.c.set_aside_by != "guard")).scalars()}


def requeue_held(conn: Connection, org_id: int, run_id: int) -> int:
    """Give another chance to the messages the guard stopped (the guard checks them again)
    and to those whose temporary failures ran out of retries (a wrong SMTP password, a relay
    down for hours): they start their retries afresh, with the same Message-ID."""
    held = conn.execute(
        sa.update(outbox).where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
                                sa.or_(sa.and_(outbox.c.status == "held",
                                               outbox.c.last_error.like("guard:%")),
                                       # set aside by the guard, not confirmed by an operator
                                       sa.and_(outbox.c.status == "set_aside",
                                               outbox.c.set_aside_by == "guard")))
        .values(status="queued", updated_at=now())).rowcount
    exhausted = conn.execute(
        sa.update(outbox).where(outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
                                outbox.c.status == "failed_temporary",
                                outbox.c.next_attempt_at.is_(None))
        .values(status="queued", attempts=0, updated_at=now())).rowcount
    return int(held) + int(exhausted)


def counts(conn: Connection, org_id: int, run_id: int) -> dict[str, int]:
    rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id
    ).group_by(outbox.c.status))
    return {str(status): int(n) for status, n in rows}


def any_left(conn: Connection, org_id: int, run_id: int, max_attempts: int) -> bool:
    """Whether a message of the run may still be sent: queued, in flight, or failed
    temporarily with attempts left (one ``EXISTS``, not a list of the rows)."""
    return bool(conn.execute(sa.select(sa.exists().where(
        outbox.c.organization_id == org_id, outbox.c.run_id == run_id,
        sa.or_(outbox.c.status.in_(("queued", "sending")),
               sa.and_(outbox.c.status == "failed_temporary",
                       outbox.c.attempts < max_attempts))))).scalar())
