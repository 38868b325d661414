"""Usage import records: a CSV or JSONL row becomes a :class:`UsageEvent` or every problem.

Invariants: floats are refused (exact decimals only); a timestamp needs an offset; every
faulty field of a row is reported at once (:class:`UsageRowError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sealbill.domain.money import MoneyError, parse_decimal
from sealbill.domain.usage import UsageEvent, UsageRowError

_RECORD_FIELDS = ("event_id", "account_reference", "metric_code", "timestamp", "value")


def _parse_timestamp(raw: object, problems: list[tuple[str, str]]) -> datetime | None:
    moment = raw
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            moment = None
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        problems.append(("timestamp", f"need an ISO 8601 date-time with offset, got {raw!r}"))
        return None
    return moment


def _parse_value(raw: object, problems: list[tuple[str, str]]) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str | int | Decimal) or isinstance(raw, bool):
        problems.append(("value", f"not a number (floats refused, use text): {raw!r}"))
        return None
    try:
        return parse_decimal(raw)
    except MoneyError as error:
        problems.append(("value", str(error).removeprefix("value: ")))
        return None


def _parse_properties(row: Mapping[str, object], problems: list[tuple[str, str]]) -> dict[str, str]:
    raw = row.get("properties") or {}
    if not isinstance(raw, Mapping):
        problems.append(("properties", "must be an object of strings"))
        raw = {}
    prefix = "properties."
    items = [*raw.items(), *((k[len(prefix):], v) for k, v in row.items() if k.startswith(prefix))]
    props: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            props[str(key)] = str(value)
        else:
            problems.append((f"{prefix}{key}", f"must be a string, not {value!r}"))
    return props


def parse_usage_record(row: Mapping[str, object], line_no: int) -> UsageEvent:
    """An event from a CSV or JSONL row; :class:`UsageRowError` lists every faulty field.

    Properties come as a ``properties`` object (JSONL) or ``properties.<name>`` columns (CSV);
    an empty ``value`` means no value. Floats are refused: parse JSON with ``parse_float=Decimal``.

    >>> parse_usage_record({"event_id": "e1", "account_reference": "C-1", "metric_code": "api",
    ...     "timestamp": "2024-04-01T10:00:00+02:00", "value": "3", "properties.region": "eu"},
    ...     2).properties
    {'region': 'eu'}
    >>> parse_usage_record({"event_id": "e1", "timestamp": "2024-04-01T10:00:00"}, 3)
    Traceback (most recent call last):
    ...
    sealbill.domain.usage.UsageRowError: line 3: account_reference: required, a non-empty \
string; metric_code: required, a non-empty string; timestamp: need an ISO 8601 date-time \
with offset, got '2024-04-01T10:00:00'
    """
    problems = [(key, "unknown field") for key in row
                if key not in (*_RECORD_FIELDS, "properties") and not key.startswith("properties.")]
    texts = {name: row.get(name) for name in ("event_id", "account_reference", "metric_code")}
    problems += [(name, "required, a non-empty string") for name, text in texts.items()
                 if not isinstance(text, str) or not text.strip()]
    timestamp = _parse_timestamp(row.get("timestamp"), problems)
    value = _parse_value(row.get("value"), problems)
    properties = _parse_properties(row, problems)
    if problems or timestamp is None:
        raise UsageRowError(line_no, problems)
    event_id, account, metric = (str(texts[k]).strip() for k in texts)
    return UsageEvent(event_id, account, metric, timestamp, value, properties)
