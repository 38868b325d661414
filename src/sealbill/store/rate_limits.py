"""Each API key's request budget, kept in the database so every server process on it shares
one limit: a token bucket (``rate`` tokens a second, at most ``burst``) per key.

Invariant: a bucket is read and updated by ONE statement (``INSERT … ON CONFLICT DO UPDATE …
RETURNING``, on SQLite and PostgreSQL alike), whose ``SET`` expressions all read the row as it
was, so two processes taking tokens at once each see the other's take: together they never
take more than the bucket holds. A process may take a small lease (``want`` > 1 tokens) and
spend it locally; the bucket still never gives more than ``burst`` + ``rate`` × elapsed time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from sealbill.store.schema import rate_buckets


def take(engine: Engine, key_id: int, *, now: float, rate: float, burst: int, want: int = 1
         ) -> tuple[int, float]:
    """Take up to ``want`` tokens of the key's bucket (``want`` if it holds that many, else
    one if it holds one, else none): (tokens taken, tokens left)."""
    want = max(1, min(want, burst))
    table = rate_buckets
    # Clocks of several threads or processes: a statement may carry a ``now`` earlier than
    # the row's last update (taken before a concurrent update committed). It refills
    # nothing then, rather than a negative amount (which, at a high rate, emptied the bucket
    # and answered 429 to a key far below its limit), and leaves ``updated_at`` where it is.
    elapsed = sa.case((table.c.updated_at > now, 0.0), else_=now - table.c.updated_at)
    refilled = table.c.tokens + elapsed * rate
    available = sa.case((refilled > burst, float(burst)), else_=refilled)
    granted = sa.case((available >= want, want), (available >= 1, 1), else_=0)
    insert: Any = (postgresql.insert(table) if engine.dialect.name == "postgresql"
                   else sqlite.insert(table))
    statement = insert.values(api_key_id=key_id, tokens=float(burst - want), updated_at=now,
                              granted=want).on_conflict_do_update(
        index_elements=[table.c.api_key_id],
        set_={"tokens": available - granted, "granted": granted,
              "updated_at": sa.case((table.c.updated_at > now, table.c.updated_at),
                                    else_=now)},
    ).returning(table.c.granted, table.c.tokens)
    with engine.begin() as conn:
        row = conn.execute(statement).one()
    return int(row.granted), float(row.tokens)
