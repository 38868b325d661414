"""Tables the database itself keeps append-only: a trigger refuses every UPDATE and DELETE
(and, on PostgreSQL, TRUNCATE) of their rows, whoever connects — not only sealbill's code.

The triggers are created with the table, by a DDL listener on every ``Table`` named in
:data:`APPEND_ONLY`: it fires for ``metadata.create_all`` and for Alembic's
``op.create_table`` alike, so the single migration regenerated from the schema (autogenerate
does not emit triggers) still creates them. Dropping the table drops its triggers; on
PostgreSQL the trigger function goes with it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection

APPEND_ONLY = frozenset({"audit_log"})


def _sqlite(table: str) -> list[str]:
    return [f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            for verb in ("UPDATE", "DELETE")]


def _postgresql(table: str) -> list[str]:
    function = f"{table}_append_only"
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        # No "%" placeholder: the driver would take it for a parameter.
        f"BEGIN RAISE EXCEPTION USING MESSAGE = '{table} is append-only: ' || TG_OP || "
        "' refused', ERRCODE = 'insufficient_privilege'; END $$",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


@event.listens_for(sa.Table, "after_create")
def _create_triggers(table: sa.Table, connection: Connection, **_: Any) -> None:
    if table.name not in APPEND_ONLY:
        return
    dialect = connection.dialect.name
    statements = _sqlite(table.name) if dialect == "sqlite" else (
        _postgresql(table.name) if dialect == "postgresql" else [])
    for statement in statements:
        connection.exec_driver_sql(statement)


@event.listens_for(sa.Table, "after_drop")
def _drop_function(table: sa.Table, connection: Connection, **_: Any) -> None:
    if table.name in APPEND_ONLY and connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {table.name}_append_only()")
