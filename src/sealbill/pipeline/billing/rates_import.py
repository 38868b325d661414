"""``sealbill import rates FILE``: the operator's exchange-rate table (e.g. the ECB reference
rates), from CSV or JSON.

Columns / keys: ``currency`` (ISO 4217), ``date`` (YYYY-MM-DD), ``rate`` (units of the currency
for one euro, as text: floats are refused), ``source`` (e.g. ``BCE``). Every problem is reported
at once, naming the record and the field, and nothing is written unless everything is right.
A rate already stored for the same currency and date is kept: the same value again is a
duplicate, another value is a problem (an invoice may already have used it).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.domain.money import MoneyError, exponent, parse_decimal
from sealbill.store.billing.exchange_rates import add_rates, rate_on

Rate = tuple[str, date, Decimal, str]


class RatesRejected(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s); nothing was imported")


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text, parse_float=lambda raw: float(raw))
        if not isinstance(data, list):
            raise RatesRejected(["file: a JSON list of rate objects is expected"])
        return [r if isinstance(r, dict) else {"": r} for r in data]
    return list(csv.DictReader(text.splitlines()))


def parse_rate(record: dict[str, Any], where: str) -> tuple[Rate | None, list[str]]:
    """One rate, or the problems of the record (each naming the field)."""
    problems: list[str] = []
    currency = str(record.get("currency") or "").strip().upper()
    try:
        exponent(currency)
        if currency == "EUR":
            problems.append(f"{where}: field 'currency': EUR is the accounting currency")
    except MoneyError:
        problems.append(f"{where}: field 'currency': unknown ISO 4217 code {currency!r}")
    try:
        day = date.fromisoformat(str(record.get("date") or "").strip())
    except ValueError:
        problems.append(f"{where}: field 'date': need YYYY-MM-DD, got {record.get('date')!r}")
        day = None
    try:
        raw = record.get("rate")
        if isinstance(raw, float):
            raise MoneyError(f"rate: floats are not accepted ({raw!r}); pass a string")
        rate = parse_decimal(raw if isinstance(raw, str | int | Decimal) else "", field="rate")
        if rate <= 0:
            problems.append(f"{where}: field 'rate': must be positive, got {rate}")
    except MoneyError as error:
        problems.append(f"{where}: field {error}")
        rate = None
    source = str(record.get("source") or "").strip()
    if not source:
        problems.append(f"{where}: field 'source': required (where the rate comes from)")
    if problems or day is None or rate is None:
        return None, problems
    return (currency, day, rate, source[:200]), []


def import_rates(engine: Engine, org_id: int, path: Path) -> dict[str, int]:
    with engine.begin() as conn:
        return import_rates_in(conn, org_id, path)


def import_rates_in(conn: Connection, org_id: int, path: Path) -> dict[str, int]:
    """:func:`import_rates` in the caller's transaction (its audit entry commits with it)."""
    records = _records(path)
    rates: list[Rate] = []
    problems: list[str] = []
    for number, record in enumerate(records, start=1):
        rate, found = parse_rate(record, f"record {number}")
        problems += found
        if rate is not None:
            rates.append(rate)
    fresh: dict[tuple[str, date], Rate] = {}
    for rate in rates:
        currency, day, value, _ = rate
        stored = rate_on(conn, org_id, currency, day)
        same_day = stored is not None and stored[1] == day
        if same_day and stored is not None and stored[0] != value:
            problems.append(f"{currency} {day}: already stored as {stored[0]}, not changed")
        elif (currency, day) in fresh and fresh[currency, day][2] != value:
            problems.append(f"{currency} {day}: two different rates in the file")
        elif not same_day:
            fresh[currency, day] = rate
    if problems:
        raise RatesRejected(problems)
    added = add_rates(conn, org_id, fresh.values(), datetime.now(UTC))
    return {"imported": added, "duplicates": len(rates) - added}
