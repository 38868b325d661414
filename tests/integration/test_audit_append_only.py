"""The audit log is append-only in the database itself: whoever connects, an UPDATE or a
DELETE of an audit row (a TRUNCATE on PostgreSQL) is refused by a trigger the migration made."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit
from sealbill.app.context import local_actor
from sealbill.store.schema import audit_log


def _entries(engine: Engine) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        return [(r.action, r.object_id) for r in conn.execute(
            sa.select(audit_log).order_by(audit_log.c.id))]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'someone else'",
    "DELETE FROM audit_log",
])
def test_an_audit_entry_cannot_be_changed_or_deleted_in_the_database(
        any_engine: Engine, statement: str) -> None:
    with any_engine.begin() as conn:
        audit.record(conn, local_actor(), None, "run.approve", "run", "run_x",
                     after={"reason": "checked"})
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
            any_engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert _entries(any_engine) == [("run.approve", "run_x")]
    with any_engine.begin() as conn:  # appending still works
        audit.record(conn, local_actor(), None, "run.send", "run", "run_x")
    assert _entries(any_engine) == [("run.approve", "run_x"), ("run.send", "run_x")]


def test_a_truncate_of_the_audit_log_is_refused_on_postgresql(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        audit.record(conn, local_actor(), None, "run.approve", "run", "run_x")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
            pg_engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE audit_log")
    assert _entries(pg_engine) == [("run.approve", "run_x")]
