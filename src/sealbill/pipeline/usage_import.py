"""Meter: import usage events from CSV or JSONL, all or nothing.

Rows are parsed by the domain (``parse_usage_record``) a chunk at a time; each chunk is
checked (references, duplicates) and inserted — all inside ONE transaction, so memory stays
flat whatever the file size. The first problem stops the writing but not the checking: every
problem of the file is reported (line and field), and the transaction is rolled back, so a
file is applied whole or not at all. With ``rejects=PATH`` the bad rows are written there
(with their problems) and the good rows are imported instead.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.domain.usage import UsageEvent, UsageRowError, parse_usage_record, payload_digest
from sealbill.store import parties
from sealbill.store.catalog import load_metrics
from sealbill.store.usage import ConflictingEvent, StoredEvent, ingest

MAX_LISTED = 200  # problems listed in an error; the count is always exact
CHUNK = 20_000

Parsed = tuple[int, Any, str, Any]  # (line, UsageEvent or None, digest or error, raw row)


class UsageImportRejected(ValueError):
    def __init__(self, problems: list[str], total: int) -> None:
        super().__init__(f"{total} problem(s) in the file; nothing was imported")
        self.problems = problems[:MAX_LISTED] + (
            [f"... and {total - MAX_LISTED} more"] if total > MAX_LISTED else [])


def _raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, raw row): a JSON text line, or a CSV record as a dict."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield line_no, line
        return
    with path.open(newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def parse_chunk(rows: list[tuple[int, Any]]) -> list[Parsed]:
    """Parse and digest raw rows; a bad row becomes an error naming its line and field."""
    out: list[Parsed] = []
    for line_no, raw in rows:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                out.append((line_no, None, f"line {line_no}: not JSON ({exc.msg})",
                            {"line": line_no}))
                continue
            if not isinstance(raw, dict):
                out.append((line_no, None, f"line {line_no}: not an object", {"line": line_no}))
                continue
        try:
            event = parse_usage_record(raw, line_no)
        except UsageRowError as exc:
            out.append((line_no, None, str(exc), raw))
            continue
        out.append((line_no, event, payload_digest(event), raw))
    return out


def _chunks(path: Path) -> Iterator[list[tuple[int, Any]]]:
    rows = _raw_rows(path)
    while chunk := list(islice(rows, CHUNK)):
        yield chunk


def _parsed_chunks(path: Path) -> Iterator[list[Parsed]]:
    # A process pool was measured here (bench/RESULTS.md): pickling the parsed events back
    # cost as much as parsing them, so chunks are parsed in this process.
    return map(parse_chunk, _chunks(path))


class _Checker:
    """Reference, metric and in-file duplicate checks; collects every problem."""

    def __init__(self, accounts: dict[str, int], metrics: set[str]) -> None:
        self.accounts, self.metrics = accounts, metrics
        self.seen: dict[str, str] = {}
        self.bad: list[tuple[Any, str]] = []

    def good_events(self, parsed: list[Parsed]) -> list[StoredEvent]:
        good = []
        for line_no, event, digest, raw in parsed:
            if event is None:
                self.bad.append((raw, digest))  # digest holds the parse error here
                continue
            problem = self._problem(line_no, event, digest)
            if problem:
                self.bad.append((raw, problem))
            elif event.event_id not in self.seen:  # the same event twice is stored once
                self.seen[event.event_id] = digest
                good.append(StoredEvent(self.accounts[event.account_reference], event.event_id,
                                        event.metric_code, event.timestamp, event.value,
                                        event.properties, digest, f"line {line_no}"))
        return good

    def _problem(self, line_no: int, event: Any, digest: str) -> str | None:
        if event.account_reference not in self.accounts:
            return (f"line {line_no}: account_reference: unknown account "
                    f"{event.account_reference!r}")
        if event.metric_code not in self.metrics:
            return f"line {line_no}: metric_code: unknown metric {event.metric_code!r}"
        if self.seen.get(event.event_id, digest) != digest:
            return (f"line {line_no}: event_id: {event.event_id!r} appears earlier in the "
                    "file with a different payload")
        return None


class _Rollback(Exception):
    """Raised inside the transaction to undo it when the file has problems."""


def import_usage_file(engine: Engine, org_id: int, path: Path, *, rejects: Path | None = None,
                      on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    with engine.begin() as conn:
        checker = _Checker(parties.account_ids_by_reference(conn, org_id),
                           set(load_metrics(conn, org_id)))
    inserted = duplicates = 0
    conflicts: list[str] = []
    try:
        with engine.begin() as conn:
            for parsed in _parsed_chunks(path):
                good = checker.good_events(parsed)
                if (not checker.bad or rejects is not None) and not conflicts:
                    try:
                        new, dup = ingest(conn, org_id, good)
                        inserted, duplicates = inserted + new, duplicates + dup
                    except ConflictingEvent as exc:
                        conflicts.extend(exc.problems)
                if on_progress:
                    on_progress(len(parsed))
            if conflicts or (checker.bad and rejects is None):
                raise _Rollback
    except _Rollback:
        problems = conflicts + [problem for _, problem in checker.bad]
        raise UsageImportRejected(problems, len(problems)) from None
    if checker.bad and rejects is not None:
        _write_rejects(rejects, checker.bad)
    return {"inserted": inserted, "duplicates": duplicates, "rejected": len(checker.bad)}


def record_usage(engine: Engine, org_id: int, events: Iterable[UsageEvent]) -> dict[str, int]:
    """Ingest events built in Python, with the same checks and the same all-or-nothing rule:
    ``record_usage(engine, org_id, [UsageEvent("e1", "C000001", "api_calls", when, D(12))])``.
    """
    parsed: list[Parsed] = [
        (n, event, payload_digest(event), {"event_id": event.event_id})
        for n, event in enumerate(events, start=1)
    ]
    with engine.begin() as conn:
        checker = _Checker(parties.account_ids_by_reference(conn, org_id),
                           set(load_metrics(conn, org_id)))
        good = checker.good_events(parsed)
        if checker.bad:
            problems = [problem.replace("line ", "event #", 1) for _, problem in checker.bad]
            raise UsageImportRejected(problems, len(problems))
        try:
            inserted, duplicates = ingest(conn, org_id, good)
        except ConflictingEvent as exc:
            raise UsageImportRejected(exc.problems, len(exc.problems)) from None
    return {"inserted": inserted, "duplicates": duplicates, "rejected": 0}


def _write_rejects(path: Path, bad: list[tuple[Any, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row, problem in bad:
            handle.write(json.dumps({"problem": problem, "row": row}, default=str,
                                    ensure_ascii=False) + "\n")
