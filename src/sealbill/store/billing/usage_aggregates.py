"""Usage aggregated by the database: one grouped read per chunk of accounts, not one row per event.

Rating most accounts needs, per (account, metric) of a usage window, one number: a sum, a count,
a maximum, a count of distinct values, or a time-weighted sum. These reads compute in SQL what
those numbers are made of, *exactly* and in integers, so that the rating worker turns them into
the same ``Decimal`` the per-event meter would (``pipeline/billing/usage_aggregates.py``):

- a value (``value``, or the metric's numeric property) counts only when its text is a plain
  unsigned decimal of at most 12 integer and 6 fraction digits; it is read scaled by 10^6 as an
  integer, summed as two integer halves (``// 10^9`` and ``% 10^9``: SQLite's integer ``SUM``
  cannot overflow before 9·10^9 rows of a group), its fraction digits kept (the exponent of the
  per-event sum). Each group also returns how many rows counted: a group where some did not is
  rated from its events instead (the per-event path names the problem, or sums what the rule
  here does not take: a negative value, an exponent, more digits);
- time-weighted sums: per (account, metric, group key) the sum of ``value × microseconds until
  the group's next event`` (the window's end for its last), with ``LEAD`` over the (account,
  metric, time) index's order, the ids breaking ties like the per-event feed. Only integer values
  below 10^6 count there, so a product and its sum over a window of at most 104 days stay below
  2^63 (the caller checks the window);
- voided events are left out, like every rating read.

Both reads take the chunk's id range (``account_id BETWEEN``) with the organization out of the
index choice, like :func:`sealbill.store.billing.usage.raw_period_query`. Each row's values are
computed once, in a subquery the planner may not merge into the aggregate (:func:`_per_row`):
merged, every aggregate repeated the expressions it reads (the integer test, a regular
expression, ran about eight times a row) and the grouped read cost ~10 µs of server CPU a row on
PostgreSQL; on SQLite the sums' read takes ~18 % less CPU unmerged (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.db import is_postgres, not_indexed
from sealbill.store.schema import usage_events

SCALE_DIGITS = 6  # fraction digits of the decimals read exactly
HALF = 10 ** 9  # the sums' split (see the module)
LEVEL_LIMIT = 10 ** 6  # time-weighted levels read by the database are below this
_RAW = sa.String()
_BIG = sa.BigInteger()


def _number(fields: Mapping[str, str | None]) -> sa.ColumnElement[Any]:
    """The text of the number each metric reads: ``value``, or its ``field`` property."""
    value = sa.type_coerce(usage_events.c.value, _RAW)
    by_property = {code: usage_events.c.properties[field].as_string()
                   for code, field in fields.items() if field}
    if not by_property:
        return value
    return sa.case(by_property, value=usage_events.c.metric_code, else_=value)


def _integer(conn: Connection, num: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``num`` as an integer when it is the canonical text of a 64-bit integer, else NULL."""
    as_int = sa.cast(num, _BIG)
    canonical = sa.case((sa.cast(as_int, _RAW) == num, as_int))
    if is_postgres(conn):  # a cast of any other text is an error there, not a prefix
        return sa.case((num.op("~", is_comparison=True)(r"^-?[0-9]{1,18}$"), canonical))
    return canonical


def _scaled_decimal(conn: Connection, num: sa.ColumnElement[Any]
                    ) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """(``num`` × 10^6, its fraction digits) when ``num`` is ``d{1,12}.d{0,6}``, else NULL."""
    plain: sa.ColumnElement[bool]
    if is_postgres(conn):
        dot = sa.func.strpos(num, ".")
        plain = num.op("~", is_comparison=True)(r"^[0-9]{1,12}\.[0-9]{0,6}$")
    else:
        dot = sa.func.instr(num, ".")
        glob = num.op("GLOB", is_comparison=True)
        plain = sa.and_(glob("[0-9]*.*"), sa.not_(glob("*[^0-9.]*")), sa.not_(glob("*.*.*")),
                        dot <= 13, sa.func.length(num) - dot <= SCALE_DIGITS)
    frac = sa.func.length(num) - dot
    multiplier = sa.case({k: 10 ** (SCALE_DIGITS - k) for k in range(SCALE_DIGITS + 1)},
                         value=frac)
    return (sa.case((plain, sa.cast(sa.func.replace(num, ".", ""), _BIG) * multiplier)),
            sa.case((plain, frac)))


def _per_row(conn: Connection, rows: sa.Select[Any], *then: sa.ColumnElement[Any]
             ) -> sa.Select[Any]:
    """``rows`` as a subquery the database computes once per row before the query above it
    reads its columns: ``OFFSET 0`` keeps either planner from pulling the subquery up into the
    outer query (SQLite does not flatten a subquery with an offset), which would copy each
    column's expression into every place that reads it (there is no common-subexpression
    elimination). On PostgreSQL ordered like the (account, metric, time) index it reads
    (``then``: further columns of the order), so the grouping above needs no sort; SQLite reads
    that index in that order anyway (an ``ORDER BY`` measured no faster there)."""
    if not is_postgres(conn):
        return rows.offset(0)
    return rows.order_by(usage_events.c.account_id, usage_events.c.metric_code, *then).offset(0)


def _in_window(org_id: int, start: datetime, end: datetime, first_account: int,
               last_account: int, codes: Iterable[str]) -> list[sa.ColumnElement[bool]]:
    return [not_indexed(usage_events.c.organization_id) == org_id,
            usage_events.c.account_id >= first_account,
            usage_events.c.account_id <= last_account,
            usage_events.c.metric_code.in_(sorted(codes)),
            usage_events.c.occurred_at >= start, usage_events.c.occurred_at < end,
            usage_events.c.voided_at.is_(None)]  # a voided event is kept, never rated


def plain_aggregates(conn: Connection, org_id: int, start: datetime, end: datetime,
                     first_account: int, last_account: int, fields: Mapping[str, str | None],
                     distinct: Mapping[str, str]) -> Iterator[tuple[Any, ...]]:
    """Per (account, metric) of ``fields`` (code -> numeric property or ``None``) in
    ``[start, end)``: ``(account_id, metric_code, rows, integer rows, Σ integer // 10^9,
    Σ integer % 10^9, largest integer, decimal rows, Σ decimal×10^6 // 10^9, Σ decimal×10^6
    % 10^9, most fraction digits of a decimal, distinct keys, rows with a key)``; the key is
    the ``distinct`` metrics' property (code -> property), NULL for the others."""
    if not fields:
        return
    num = _number(fields)
    key = sa.case({code: usage_events.c.properties[prop].as_string()
                   for code, prop in distinct.items()}, value=usage_events.c.metric_code
                  ) if distinct else sa.null()
    rows = _per_row(conn, sa.select(
        usage_events.c.account_id, usage_events.c.metric_code, num.label("num"),
        _integer(conn, num).label("whole"), key.label("key"),
    ).where(*_in_window(org_id, start, end, first_account, last_account, fields))).subquery()
    whole = rows.c.whole
    scaled, frac = _scaled_decimal(conn, rows.c.num)
    # Decimals are read only where the text is no integer (CASE evaluates lazily).
    part = sa.case((whole.is_(None), scaled)).label("part")
    digits = sa.case((whole.is_(None), frac))
    query = (
        sa.select(rows.c.account_id, rows.c.metric_code, sa.func.count(),
                  sa.func.count(whole), sa.func.sum(whole // HALF), sa.func.sum(whole % HALF),
                  sa.func.max(whole), sa.func.count(part), sa.func.sum(part // HALF),
                  sa.func.sum(part % HALF), sa.func.max(digits),
                  sa.func.count(sa.distinct(rows.c.key)), sa.func.count(rows.c.key))
        .group_by(rows.c.account_id, rows.c.metric_code))
    for row in conn.execute(query):
        yield tuple(row)


def _micros(conn: Connection) -> sa.ColumnElement[Any]:
    """``occurred_at`` in microseconds since the epoch, exactly (no float); NULL on SQLite
    when the stored text has not its usual shape ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if is_postgres(conn):
        return sa.cast(sa.extract("epoch", usage_events.c.occurred_at) * 1_000_000, _BIG)
    text = sa.type_coerce(usage_events.c.occurred_at, _RAW)
    micros = (sa.func.unixepoch(sa.func.substr(text, 1, 19)) * 1_000_000
              + sa.cast(sa.func.substr(text, 21, 6), _BIG))
    return sa.case((sa.func.length(text) == 26, micros))


def weighted_pieces(conn: Connection, org_id: int, start: datetime, end: datetime,
                    end_micros: int, first_account: int, last_account: int,
                    fields: Mapping[str, str | None], group_by: Mapping[str, str | None]
                    ) -> Iterator[tuple[Any, ...]]:
    """Per (account, time-weighted metric, group key) in ``[start, end)``: ``(account_id,
    metric_code, group key, rows, rows read (an integer level below 10^6 in absolute value,
    an instant), Σ level × µs until the group's next event (``end_micros`` after its last),
    the first event's µs)``."""
    if not fields:
        return
    whole = _integer(conn, _number(fields))
    grouped = {code: sa.func.coalesce(usage_events.c.properties[prop].as_string(), "")
               for code, prop in group_by.items() if prop and code in fields}
    group_key = sa.case(grouped, value=usage_events.c.metric_code, else_="") if grouped \
        else sa.literal("")
    columns = [usage_events.c.account_id, usage_events.c.metric_code, group_key, whole,
               _micros(conn), usage_events.c.occurred_at, usage_events.c.id]
    where = _in_window(org_id, start, end, first_account, last_account, fields)
    if is_postgres(conn):  # each row's values computed once, then windowed (see _per_row)
        names = ("account_id", "metric_code", "group_key", "whole", "at", "occurred_at", "id")
        once = _per_row(conn, sa.select(*(column.label(name) for column, name in zip(
            columns, names, strict=True))).where(*where),
            usage_events.c.occurred_at, usage_events.c.id).subquery()
        columns, where = list(once.c), []
    account, metric, key, whole, at, moment, row_id = columns
    partition = [account, metric] if not grouped else [account, metric, key]
    rows = (
        sa.select(account, metric, key.label("group_key"),
                  sa.case((whole.between(1 - LEVEL_LIMIT, LEVEL_LIMIT - 1), whole)
                          ).label("level"), at.label("at"),
                  sa.func.lead(at, 1, end_micros).over(
                      partition_by=partition, order_by=(moment, row_id)).label("next"))
        .where(*where)
        .subquery())
    weighted = rows.c.level * (rows.c.next - rows.c.at)
    query = (sa.select(rows.c.account_id, rows.c.metric_code, rows.c.group_key,
                       sa.func.count(), sa.func.count(weighted), sa.func.sum(weighted),
                       sa.func.min(rows.c.at))
             .group_by(rows.c.account_id, rows.c.metric_code, rows.c.group_key))
    for row in conn.execute(query):
        yield tuple(row)
