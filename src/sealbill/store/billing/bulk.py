"""Driver-level fast paths for the two bulk writes of billing: drafts and finalization.

Profiled at 20,000 accounts, the process that writes a billing run spent most of its time in
the database layers, not in the database: on PostgreSQL, SQLAlchemy's batched
``INSERT ... VALUES (...), (...) RETURNING`` and ``IN (...)`` lists of 1,000 ids made query
strings too long for psycopg's statement cache, so psycopg parsed each again (about 90 ms a
statement), and the lines went out one pipelined statement each; on SQLite, SQLAlchemy's
per-row parameter processing cost more than SQLite's inserts. Here, on PostgreSQL a chunk's
drafts cost one ``nextval`` query and three COPYs, and a chunk's finalization one ``UPDATE``
joined to a JSON document; on SQLite both go to the driver's ``executemany``.

The values written are exactly what the column types would write: ``DecimalText`` as
fixed-point text, ``UtcDateTime`` as an aware UTC timestamp (naive UTC text on SQLite, in
SQLAlchemy's format), dates as ISO text on SQLite, ``JSON`` as ``json.dumps`` (so ``None`` is
the JSON ``null``, not SQL ``NULL``); tests compare the rows with those of SQLAlchemy's
statements on both databases (tests/integration/billing/test_bulk_writes.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_INVOICE_COLUMNS = (
    "organization_id", "run_id", "account_id", "kind", "status", "billing_key",
    "period_start", "period_end", "currency", "locale", "total_excl_minor",
    "tax_total_minor", "total_incl_minor", "corrects_invoice_id", "account_reference",
    "created_at", "oss_eur_minor", "tax_facts",
)
_LINE_COLUMNS = (
    "organization_id", "invoice_id", "position", "description", "quantity", "unit_price",
    "amount_minor", "vat_category", "vat_rate", "period_start", "period_end",
)
_TAX_COLUMNS = (
    "organization_id", "invoice_id", "vat_category", "vat_rate", "base_minor", "tax_minor",
    "exemption_reason", "exemption_code",
)


def _text(value: Any) -> str | None:
    """What ``DecimalText`` stores (floats are refused there, and here)."""
    if type(value) is Decimal:
        return format(value, "f")
    if value is None:
        return None
    if isinstance(value, float):
        raise ValueError(f"float refused for an exact decimal column: {value!r}")
    return format(Decimal(value), "f")  # as DecimalText: never "2E+1"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime refused: {value!r}")
    return value.astimezone(UTC)


def _sqlite_day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_moment(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _rows(org_id: int, ids: Sequence[int], drafts: Sequence[Any], day: Any
          ) -> tuple[Iterable[tuple[Any, ...]], Iterable[tuple[Any, ...]]]:
    """The drafts' line rows and VAT rows, ``day`` writing their dates."""
    days: dict[date | None, Any] = {}  # most lines of a chunk share a few dates

    def day_of(value: date | None) -> Any:
        found = days.get(value, days)
        if found is days:
            found = days[value] = day(value)
        return found

    lines = (
        (org_id, invoice_id, line.position, line.description, _text(line.quantity),
         _text(line.unit_price), line.amount_minor, line.vat_category.value,
         _text(line.vat_rate), day_of(line.period_start), day_of(line.period_end))
        for invoice_id, d in zip(ids, drafts, strict=True) for line in d.lines)
    taxes = (
        (org_id, invoice_id, tax.category.value, _text(tax.rate), tax.base_minor,
         tax.tax_minor, tax.exemption_reason, tax.exemption_code)
        for invoice_id, d in zip(ids, drafts, strict=True) for tax in d.tax_subtotals)
    return lines, taxes


def _invoice_row(org_id: int, run_id: int | None, d: Any, day: Any, created: Any
                 ) -> tuple[Any, ...]:
    return (org_id, run_id, d.account_id, d.kind.value, "draft", d.billing_key,
            day(d.period_start), day(d.period_end), d.currency, d.locale, d.total_excl_minor,
            d.tax_total_minor, d.total_incl_minor, d.corrects_invoice_id, d.account_reference,
            created, d.oss_eur_minor, json.dumps(d.tax_facts))


def insert_drafts(conn: Connection, org_id: int, run_id: int | None, drafts: Sequence[Any],
                  at: datetime) -> list[int]:
    """Insert drafts (``store.invoices.DraftInvoice``), their lines and VAT rows; their ids
    in order (ascending as the drafts come, as the INSERT gave them)."""
    if conn.dialect.name == "postgresql":
        return _copy_drafts(conn, org_id, run_id, drafts, at)
    return _sqlite_drafts(conn, org_id, run_id, drafts, at)


def _copy_drafts(conn: Connection, org_id: int, run_id: int | None, drafts: Sequence[Any],
                 at: datetime) -> list[int]:
    import psycopg

    created = _utc(at)
    with _driver(conn).cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('invoices', 'id')) "
                       "FROM generate_series(1, %s)", (len(drafts),))
        ids = sorted(int(row[0]) for row in cursor.fetchall())
        invoices = ((invoice_id, *_invoice_row(org_id, run_id, d, _same, created))
                    for invoice_id, d in zip(ids, drafts, strict=True))
        try:
            _copy(cursor, "invoices", ("id", *_INVOICE_COLUMNS), invoices)
        except psycopg.IntegrityError as exc:
            # As from the INSERT it replaces: e.g. a second run racing for a billing key.
            raise sa.exc.IntegrityError("COPY invoices", None, exc) from exc
        lines, taxes = _rows(org_id, ids, drafts, _same)
        _copy(cursor, "invoice_lines", _LINE_COLUMNS, lines)
        _copy(cursor, "invoice_tax_lines", _TAX_COLUMNS, taxes)
    return ids


def _same(value: Any) -> Any:
    return value


def _copy(cursor: Any, table: str, columns: Sequence[str],
          rows: Iterable[Sequence[Any]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")


def _sqlite_drafts(conn: Connection, org_id: int, run_id: int | None, drafts: Sequence[Any],
                   at: datetime) -> list[int]:
    """SQLite steps ``RETURNING`` row by row, several times slower than an executemany
    followed by one lookup by billing key (unique per organization)."""
    import sqlite3

    created = _sqlite_moment(at)
    cursor = _driver(conn).cursor()
    try:
        try:
            cursor.executemany(_insert_sql("invoices", _INVOICE_COLUMNS), (
                _invoice_row(org_id, run_id, d, _sqlite_day, created) for d in drafts))
        except sqlite3.IntegrityError as exc:
            raise sa.exc.IntegrityError("INSERT INTO invoices", None, exc) from exc
        keys = [d.billing_key for d in drafts]
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):  # SQLite bounds the parameters of a statement
            part = keys[start:start + 500]
            cursor.execute("SELECT billing_key, id FROM invoices WHERE organization_id = ? "
                           f"AND billing_key IN ({', '.join('?' * len(part))})", (org_id, *part))
            found.update(cursor.fetchall())
        ids = [int(found[key]) for key in keys]
        lines, taxes = _rows(org_id, ids, drafts, _sqlite_day)
        cursor.executemany(_insert_sql("invoice_lines", _LINE_COLUMNS), lines)
        cursor.executemany(_insert_sql("invoice_tax_lines", _TAX_COLUMNS), taxes)
    finally:
        cursor.close()
    return ids


# PostgreSQL: one JSON document of [id, number, buyer snapshot, payment snapshot] rows.
# psycopg dumps a text array element by element (a regular expression each); a JSON document
# is one string, ``json`` keeps each element's text as written and a JSON null stays null.
_FINALIZE_PG = """
UPDATE invoices SET number = v.e ->> 1, status = 'finalized', issue_date = %(issue_date)s,
    due_date = %(due_date)s, finalized_at = %(at)s, seller_snapshot = %(seller)s::json,
    buyer_snapshot = v.e -> 2, payment_snapshot = v.e -> 3, notes = %(notes)s::json
FROM json_array_elements(%(rows)s::json) AS v(e)
WHERE invoices.id = (v.e ->> 0)::bigint AND invoices.status = 'draft'
"""
_FINALIZE_SQLITE = """
UPDATE invoices SET number = ?, status = 'finalized', issue_date = ?, due_date = ?,
    finalized_at = ?, seller_snapshot = ?, buyer_snapshot = ?, payment_snapshot = ?, notes = ?
WHERE id = ? AND status = 'draft'
"""


def finalize_rows(conn: Connection, rows: Sequence[tuple[int, str, Any, Any]], *,
                  issue_date: date, due_date: date, at: datetime, seller: dict[str, Any],
                  notes: list[Any]) -> None:
    """Mark drafts finalized: ``rows`` are (id, number, buyer snapshot, payment snapshot);
    the rest is the same for every row."""
    if conn.dialect.name == "postgresql":
        with _driver(conn).cursor() as cursor:
            cursor.execute(_FINALIZE_PG, {
                "issue_date": issue_date, "due_date": due_date, "at": _utc(at),
                "seller": json.dumps(seller), "notes": json.dumps(notes),
                "rows": json.dumps([list(row) for row in rows])})
        return
    issued, due, moment = issue_date.isoformat(), due_date.isoformat(), _sqlite_moment(at)
    seller_json, notes_json = json.dumps(seller), json.dumps(notes)
    cursor = _driver(conn).cursor()
    try:
        cursor.executemany(_FINALIZE_SQLITE, (
            (number, issued, due, moment, seller_json, json.dumps(buyer), json.dumps(payment),
             notes_json, invoice_id)
            for invoice_id, number, buyer, payment in rows))
    finally:
        cursor.close()
