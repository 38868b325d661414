"""Statements run for every message sent, compiled once and executed on the DBAPI cursor.

Sending a message runs about a dozen small statements. Through SQLAlchemy's execution layer
each costs about 70 µs of Python around 5–10 µs of database work (measured: the guard's two
fresh reads take 0.16 ms through ``Connection.execute``, 0.015 ms on the cursor). A
:class:`Prepared` statement is compiled by SQLAlchemy once per dialect — same SQL, same bind
and result conversions of the column types — and run on the connection's own DBAPI cursor, so
it takes part in the caller's transaction like any other statement.

Invariants:
- the SQL is what SQLAlchemy compiles for the statement (no hand-written SQL), and every bind
  value and result value goes through its type's processors for the dialect;
- statements with "expanding" parameters (``IN`` lists) are refused: build one statement per
  list length instead (see ``store.outbox.contact_rows``), or pass the list as one parameter
  (:class:`PreparedIds`: a JSON array read by ``json_each`` on SQLite, an array on PostgreSQL);
- ``tests/integration/delivery/test_fresh_facts.py`` compares the prepared reads with the
  reference reads on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import UpdateBase

from sealbill.store.db import ids_condition, ids_value

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # positional paramstyles: the names, in placeholder order
    defaults: dict[str, Any]  # literal values of the statement (``.values(status="sent")``)
    binds: dict[str, Processor]
    results: tuple[Processor, ...]
    record: Any  # a namedtuple class: the result columns by name


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled: Any = self.statement.compile(dialect=dialect)  # a SQLCompiler
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()):
            raise ValueError("an expanding (IN list) parameter cannot be prepared")
        processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for name, bind in binds.items()}
        defaults = {name: bind.value for name, bind in binds.items()
                    if not bind.required and bind.callable is None}
        columns: Any
        if isinstance(self.statement, UpdateBase):  # INSERT / UPDATE / DELETE [RETURNING ...]
            columns = list(self.statement.exported_columns) or None
        else:
            columns = getattr(self.statement, "selected_columns", None)
        if columns is None:  # INSERT / UPDATE without RETURNING
            results: tuple[Processor, ...] = ()
            names: list[str] = []
        else:
            results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None)
                            for c in columns)
            names = [str(c.key) for c in columns]
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        record = namedtuple("Record", names, rename=True)  # type: ignore[misc]
        return _Compiled(compiled.string, order, defaults, processors, results, record)

    def _params(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = {**compiled.defaults, **params}
        converted = {}
        for name, processor in compiled.binds.items():
            value = values[name]
            converted[name] = processor(value) if processor is not None else value
        if compiled.order is None:
            return converted
        return tuple(converted[name] for name in compiled.order)

    def sql_and_params(self, conn: Connection, params: Mapping[str, Any]) -> tuple[str, Any]:
        """What :meth:`rows` hands the cursor (for query plans in tests)."""
        compiled = self._compiled(conn.dialect)
        return compiled.sql, self._params(compiled, params)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row (a named tuple), each value converted by its column type."""
        compiled = self._compiled(conn.dialect)
        bound = self._params(compiled, params)
        with _cursor(conn, compiled.sql, bound) as cursor:
            cursor.execute(compiled.sql, bound)
            raw = cursor.fetchall()
        processors, record = compiled.results, compiled.record
        return [record._make(p(v) if p is not None else v
                             for p, v in zip(processors, row, strict=True)) for row in raw]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """An INSERT, UPDATE or DELETE; the number of rows it changed."""
        compiled = self._compiled(conn.dialect)
        bound = self._params(compiled, params)
        with _cursor(conn, compiled.sql, bound) as cursor:
            cursor.execute(compiled.sql, bound)
            return int(cursor.rowcount)

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per parameter set: one ``executemany`` (on PostgreSQL psycopg
        pipelines it, a single round trip)."""
        if not rows:
            return
        compiled = self._compiled(conn.dialect)
        bound = [self._params(compiled, r) for r in rows]
        with _cursor(conn, compiled.sql, bound) as cursor:
            cursor.executemany(compiled.sql, bound)

    def rows_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]
                  ) -> list[list[Any]]:
        """The statement once per parameter set, in order; each one's rows (as :meth:`rows`).

        On PostgreSQL one ``executemany(..., returning=True)``: psycopg sends every execution
        in one pipeline, so the batch costs one round trip instead of one per parameter set;
        each execution still sees what the ones before it wrote. Elsewhere (SQLite, in
        process: no round trip to save) one execution after the other."""
        if not params:
            return []
        if conn.dialect.name != "postgresql":
            return [self.rows(conn, p) for p in params]
        compiled = self._compiled(conn.dialect)
        bound = [self._params(compiled, p) for p in params]
        processors, record = compiled.results, compiled.record
        found: list[list[Any]] = []
        with _cursor(conn, compiled.sql, bound) as cursor:
            cursor.executemany(compiled.sql, bound, returning=True)
            while True:
                found.append([record._make(p(v) if p is not None else v
                                           for p, v in zip(processors, row, strict=True))
                              for row in cursor.fetchall()])
                if not cursor.nextset():
                    break
        if len(found) != len(params):
            raise RuntimeError(f"{len(params)} executions gave {len(found)} results")
        return found


IdsCondition = Callable[[Any, str], Any]  # (column, parameter name) -> ``column IN ids``


def _ids_in(dialect: str) -> IdsCondition:
    """``column IN :name``, the ids one parameter, as ``store.db.ids_condition`` writes it."""
    return lambda column, name: ids_condition(dialect, column, name=name)


class PreparedIds:
    """A read whose id lists (``lists``: their parameter names) are one parameter each, so
    that it can be prepared like :class:`Prepared` (an ``IN`` list cannot): ``build`` makes the
    statement from a condition factory (``ids(column, name)``), once per dialect. Pass each
    list as a sequence of ints; the rows are :meth:`Prepared.rows`'s."""

    def __init__(self, build: Callable[[IdsCondition], ClauseElement],
                 lists: Sequence[str]) -> None:
        self._build, self._lists = build, tuple(lists)
        self._by_dialect: dict[str, Prepared] = {}

    def prepared(self, dialect: str) -> Prepared:
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = Prepared(self._build(_ids_in(dialect)))
        return found

    def bound(self, dialect: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with each id list in the dialect's form of the parameter."""
        return {**params, **{name: ids_value(dialect, params[name]) for name in self._lists}}

    def sql_and_params(self, conn: Connection, params: Mapping[str, Any]) -> tuple[str, Any]:
        dialect = conn.dialect.name
        return self.prepared(dialect).sql_and_params(conn, self.bound(dialect, params))

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        dialect = conn.dialect.name
        return self.prepared(dialect).rows(conn, self.bound(dialect, params))


@contextmanager
def _cursor(conn: Connection, sql: str, params: Any) -> Iterator[Any]:
    """A cursor of the DBAPI connection under ``conn``, inside ``conn``'s transaction.

    A driver error is raised as SQLAlchemy raises it from ``conn.execute`` (``IntegrityError``,
    ``OperationalError``... all ``sqlalchemy.exc.DBAPIError``): callers tell a database error
    from anything else, and a unique violation from other errors, the same way for both."""
    if not conn.in_transaction():
        raise RuntimeError("prepared statements run inside the caller's transaction")
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, dbapi.Error,
                                         dialect=conn.dialect) from exc
    finally:
        cursor.close()
