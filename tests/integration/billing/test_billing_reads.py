"""The per-chunk reads of a billing run use the per-account indexes on SQLite.

SQLite keeps no statistics here (nothing runs ANALYZE): for ``organization_id = ? AND
account_id IN (...)`` it chose the organization's index and read every event, subscription or
contact link of the organization for each chunk of 1,000 accounts (0.15 s a chunk instead of
0.013 s at 500,000 events). The statements are captured as they run and their plans read back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.store.billing import catalog
from sealbill.store.billing.usage import stream_period_raw
from sealbill.store.billing.usage_aggregates import plain_aggregates, weighted_pieces
from sealbill.store.parties import records as parties


@contextmanager
def _captured(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(conn, "before_cursor_execute", record)


def _plans(engine: Engine, read: Callable[[Connection], Any]) -> list[str]:
    with engine.connect() as conn:
        with _captured(conn) as statements:
            read(conn)
        assert statements
        return [str(row[3]) for statement, parameters in statements
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]


def test_chunk_reads_use_the_per_account_indexes_on_sqlite(sqlite_engine: Engine) -> None:
    ids = list(range(1, 1001))
    window = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    usage = _plans(sqlite_engine, lambda conn: list(stream_period_raw(conn, 1, *window, ids)))
    assert [step for step in usage if "ix_usage_events_account_metric_time" in step], usage
    assert not [step for step in usage if "TEMP B-TREE" in step], usage  # index order
    phases = _plans(sqlite_engine, lambda conn: catalog.phases_by_account(
        conn, 1, ids, date(2026, 10, 1), date(2026, 12, 1)))
    assert [step for step in phases if "ix_subscriptions_account_id" in step], phases
    links = _plans(sqlite_engine,
                   lambda conn: parties.verified_billing_recipients_many(conn, 1, ids))
    assert [step for step in links if "ix_contact_links_account_id" in step], links
    for step in usage + phases + links:  # a scan of the id list itself (json_each) is fine
        assert "(organization_id=?)" not in step, step
        assert not step.startswith("SCAN") or "VIRTUAL TABLE" in step, step


def test_aggregate_reads_use_the_per_account_index_on_sqlite(sqlite_engine: Engine) -> None:
    """The grouped reads of rating from aggregates take the chunk's id range on the
    (account, metric, time) index, never the organization's rows."""
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    plans = _plans(sqlite_engine, lambda conn: list(plain_aggregates(
        conn, 1, start, end, 1, 1000, {"calls": None, "gb": "size"}, {"users": "user"})))
    plans += _plans(sqlite_engine, lambda conn: list(weighted_pieces(
        conn, 1, start, end, 0, 1, 1000, {"seats": None}, {"seats": "pool"})))
    assert len([step for step in plans if "ix_usage_events_account_metric_time" in step]) == 2
    for step in plans:
        assert "(organization_id=?)" not in step and not step.startswith("SCAN usage_events")
