"""Locks kept in the database itself, so every path to the same database sees them."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column
from sealbill.store.types import UtcDateTime

# One row per run being sent (SQLite; PostgreSQL uses a session advisory lock). ``holder`` is
# host:pid:process-start-time of the `run send` holding it: a row whose holder is dead (killed)
# is taken over by the next sender (sealbill.store.delivery.send_lock).
send_locks = sa.Table(
    "send_locks",
    metadata,
    id_column(),
    org_column(),
    sa.Column("run_id", sa.BigInteger, nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("organization_id", "run_id"),
)
