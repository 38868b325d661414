"""Usage file rows to stored rows: a fast path for the common shapes, the domain's for the rest.

The careful path is the domain's: ``json.loads`` (``parse_float=Decimal``), then
:func:`~sealbill.domain.usage_records.parse_usage_record` and the reference checks; it names every
problem of a row (line and field). The fast path decodes a JSONL line with msgspec into a typed
struct (floats as ``Decimal``, from the number's text, never through ``float``) and converts the
common shapes itself. Any row it is not sure about — a decoding or type error, an unknown field,
an unknown account or metric, an unusual timestamp or value — goes to the careful path, so both
paths store the same row for the same line (tests/unit/pipeline/test_usage_rows.py checks it
with Hypothesis) and only the careful path writes problems.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from sealbill.domain.money import MoneyError, parse_decimal
from sealbill.domain.usage import UsageEvent, UsageRowError
from sealbill.domain.usage_records import parse_usage_record
from sealbill.inputs.usage import (
    ANY_METRIC,
    MAX_INTEGER_DIGITS,
    MAX_PROPERTIES,
    MetricRule,
    event_problems,
)
from sealbill.store.billing.usage_ingest import Row, canonical_properties, stored_row, utc_text


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One JSONL line as decoded. ``gc=False``: decoded JSON holds no reference cycles, so the
    cycle collector need not track one more object a line."""

    event_id: str
    account_reference: str
    metric_code: str
    timestamp: str
    value: Any = None
    properties: dict[str, str] | None = None


_decode = msgspec.json.Decoder(_Line, float_hook=Decimal).decode
_decode_lines = msgspec.json.Decoder(list[_Line], float_hook=Decimal).decode
_fromisoformat = datetime.fromisoformat
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of a UTF-16 surrogate


def not_unicode(record: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first field holding text that is not valid Unicode (a lone surrogate, which JSON
    escapes can express but no database stores), as a problem; ``None`` when all is well."""
    for key, value in record.items():
        if not _encodable(str(key)):
            return f"{prefix}{key!a}: a field name that is not valid Unicode"
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found = not_unicode(value, f"{name}.")
            if found is not None:
                return found
        elif isinstance(value, str) and not _encodable(value):
            return f"{name}: not valid Unicode (a lone surrogate)"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Batch:
    """A chunk of the file, parsed: ``raws`` are its rows as read (JSONL texts or CSV records),
    the first on line ``first``; ``rows`` the good ones in file order, ``skipped`` the indices
    in ``raws`` of the others (blank lines and ``bad`` rows, with their line and problem)."""

    first: int
    raws: list[Any]
    rows: list[Row] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    bad: list[tuple[int, Any, str]] = field(default_factory=list)  # (line, raw row, problem)
    read: int = 0

    def origin(self, index: int) -> tuple[int, Any]:
        """(line number, raw row) of ``rows[index]``."""
        item = index
        for skipped in self.skipped:  # ascending: the index-th raw row not skipped
            if skipped > item:
                break
            item += 1
        return self.first + item, self.raws[item]


class RowParser:
    """Parses rows against one organization's accounts (reference -> id) and metrics (codes,
    or code -> :class:`MetricRule`: the limits of :mod:`sealbill.inputs.usage` apply).

    ``archived``: references of accounts that take no new usage — a row naming one is a bad
    row ("account 'X' is archived"), by the careful path (the fast path does not know them).
    """

    def __init__(self, accounts: Mapping[str, int],
                 metrics: Collection[str] | Mapping[str, MetricRule],
                 archived: Collection[str] = ()) -> None:
        self.archived = frozenset(archived)
        # The caller's map itself when nothing is to be left out: a copy of an organization's
        # map doubled the import's largest structure while both existed (~5 MB of hash table
        # at 100,000 accounts; bench/RESULTS.md, memfloor).
        self.accounts: Mapping[str, int] = (
            accounts if not self.archived and isinstance(accounts, dict) else
            {reference: account_id for reference, account_id in accounts.items()
             if reference not in self.archived})
        self.metrics = frozenset(metrics)
        self.rules: dict[str, MetricRule] = (
            dict(metrics) if isinstance(metrics, Mapping) else {})
        # The fast path looks a line's reference and metric up as written, without stripping
        # them: only keys that stripping leaves as they are can match (a line with spaces
        # around a name goes to the careful path, which strips it).
        self._accounts_as_written = (
            self.accounts if all(ref == ref.strip() for ref in self.accounts)
            else {ref: id_ for ref, id_ in self.accounts.items() if ref == ref.strip()})
        self._metrics_as_written = frozenset(code for code in self.metrics if code == code.strip())

    def rule(self, metric_code: str) -> MetricRule:
        return self.rules.get(metric_code, ANY_METRIC)

    def parse(self, first: int, raws: list[Any]) -> Batch:
        """``raws``: JSONL texts or CSV records (dicts), the first one on line ``first``."""
        batch = Batch(first, raws, read=len(raws))
        append, fast = batch.rows.append, self._fast
        for index, raw in enumerate(raws):
            # "\\" first: one memchr, where "\\u" is a substring search of every line.
            if type(raw) is not str or ("\\" in raw and _SURROGATE.search(raw)):
                row = None  # CSV, or a lone surrogate escape: the careful path names it
            else:
                try:
                    row = fast(_decode(raw))
                except _DECODE_ERRORS:
                    row = None
            if row is None:
                row = self.careful(first + index, raw, batch)
                if row is None:
                    batch.skipped.append(index)
                    continue
            append(row)
        return batch

    def parse_array(self, body: bytes) -> list[Row] | None:
        """The rows of a JSON array of events (an API batch) decoded in one call, when every
        event takes the fast path; ``None`` otherwise (then :meth:`parse` of the items names
        each problem). Stores the same rows as :meth:`parse` of the array's items."""
        if b"\\u" in body and _SURROGATE.search(body.decode("utf-8", "replace")):
            return None  # a lone surrogate escape: the careful path names it
        try:
            lines = _decode_lines(body)
        except _DECODE_ERRORS:
            return None
        fast, rows = self._fast, list[Row]()
        append = rows.append
        for line in lines:
            row = fast(line)
            if row is None:
                return None
            append(row)
        return rows

    def event_row(self, event: UsageEvent) -> Row | str:
        """The row of an event built in Python, or the problem of its references."""
        wrong = not_unicode({"event_id": event.event_id, "account_reference":
                             event.account_reference, "metric_code": event.metric_code,
                             "properties": dict(event.properties or {})})
        if wrong is not None:
            return wrong
        account_id = self.accounts.get(event.account_reference)
        if account_id is None:
            if event.account_reference in self.archived:
                return f"account_reference: account {event.account_reference!r} is archived"
            return f"account_reference: unknown account {event.account_reference!r}"
        if event.metric_code not in self.metrics:
            return f"metric_code: unknown metric {event.metric_code!r}"
        problems = event_problems(event, self.rule(event.metric_code))
        if problems:
            return "; ".join(f"{name}: {problem}" for name, problem in problems)
        return stored_row(account_id, event)

    def _fast(self, line: _Line) -> Row | None:
        account_id = self._accounts_as_written.get(line.account_reference)
        metric = line.metric_code
        event_id = line.event_id.strip()
        if account_id is None or metric not in self._metrics_as_written or not event_id or len(
                event_id) > 128 or not event_id.isprintable():
            return None  # the careful path names what is wrong (or strips the names)
        at = fast_utc_text(line.timestamp)
        if at is None:
            return None
        rule = self.rules.get(metric, ANY_METRIC)
        value = line.value
        if value is None:
            if rule.needs_value:
                return None
        else:
            kind = type(value)
            if kind is str:
                if rule.bounded or not (value.isdigit() and value.isascii() and value[0] != "0"
                                        and len(value) <= MAX_INTEGER_DIGITS):
                    try:
                        number = parse_decimal(value)
                    except MoneyError:
                        return None
                    if rule.value_problem(number):
                        return None
                    value = str(number)
            elif kind is int:
                if not (0 <= value < 10 ** MAX_INTEGER_DIGITS or (
                        rule.allows_negative and -value < 10 ** MAX_INTEGER_DIGITS)) or (
                        rule.bounded and rule.value_problem(Decimal(value))):
                    return None
                value = str(value)
            elif kind is Decimal:
                if rule.value_problem(value):
                    return None
                value = str(value)  # a JSON number: from its text, always finite
            else:
                return None
        props = line.properties
        if (props or rule.numeric_property) and not _plain_properties(props or {}, rule):
            return None
        return (account_id, event_id, metric, at, value,
                canonical_properties(props) if props else None)

    def fast(self, text: str) -> Row | None:
        """The row of a JSONL line by the fast path, or ``None``: the careful path decides."""
        try:
            return self._fast(_decode(text))
        except _DECODE_ERRORS:
            return None

    def careful(self, line_no: int, raw: Any, batch: Batch) -> Row | None:
        """The row by the domain's parser, or ``None`` with the problem added to ``batch``."""
        if isinstance(raw, str):
            if not raw.strip():
                batch.read -= 1  # blank lines are not rows
                return None
            try:
                raw = json.loads(raw, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                batch.bad.append((line_no, {"line": line_no},
                                  f"line {line_no}: not JSON ({exc.msg})"))
                return None
            except RecursionError:
                batch.bad.append((line_no, {"line": line_no},
                                  f"line {line_no}: not JSON (nested too deeply)"))
                return None
            if not isinstance(raw, dict):
                batch.bad.append((line_no, {"line": line_no}, f"line {line_no}: not an object"))
                return None
        wrong = not_unicode(raw)
        if wrong is not None:
            batch.bad.append((line_no, {"line": line_no}, f"line {line_no}: {wrong}"))
            return None
        try:
            event = parse_usage_record(raw, line_no)
            problems = event_problems(event, self.rule(event.metric_code))
            if problems:
                raise UsageRowError(line_no, problems)
        except UsageRowError as exc:
            batch.bad.append((line_no, raw, str(exc)))
            return None
        row = self.event_row(event)
        if isinstance(row, str):
            batch.bad.append((line_no, raw, f"line {line_no}: {row}"))
            return None
        return row


def _plain_properties(props: Mapping[str, str], rule: MetricRule) -> bool:
    """Whether the properties surely pass :func:`event_problems` (else the careful path)."""
    if len(props) > MAX_PROPERTIES:
        return False
    for key, text in props.items():
        # isprintable() is false for every control, format (bidi, zero-width) and private
        # character: what it accepts, event_problems accepts too.
        if not (0 < len(key) <= 64 and len(text) <= 200 and key.isprintable()
                and text.isprintable()):
            return False
    name = rule.numeric_property
    if name is not None:
        raw = props.get(name)
        if raw is None:
            return False
        try:
            return rule.value_problem(parse_decimal(raw)) is None
        except MoneyError:
            return False
    return True


def fast_utc_text(text: str) -> str | None:
    """:func:`utc_text` of an ISO 8601 text with an offset, by slicing when it is already UTC
    in the usual shape (``2026-10-01T08:00:00Z``, ``…+00:00``, with 0 or 6 fraction digits);
    ``None`` when it has no offset or does not parse (the careful path then says why)."""
    try:
        moment = _fromisoformat(text)
    except ValueError:
        return None
    size = len(text)
    if moment.tzinfo is UTC and size >= 20 and text[4] == text[7] == "-" and (
            text[13] == text[16] == ":"):
        tail = text[19]
        if (size == 25 and tail in "+-") or (size == 20 and tail == "Z"):
            return f"{text[:10]} {text[11:19]}.000000"
        if tail == "." and ((size == 32 and text[26] in "+-") or (size == 27 and text[26] == "Z")):
            return f"{text[:10]} {text[11:26]}"
    if moment.utcoffset() is None:
        return None
    try:
        return utc_text(moment)
    except OverflowError:  # an instant whose UTC date is out of range (year 0 or 10000)
        return None


def reject_row(source: Any) -> Any:
    """The row written to the rejects file for a good row found bad later (a conflict)."""
    return json.loads(source, parse_float=Decimal) if isinstance(source, str) else source
