"""Meter: import usage events from CSV or JSONL, all or nothing.

Every row is parsed and checked (domain rules, known account, known metric, no conflicting
duplicate in the file) before anything is written; then the whole file is stored in one
transaction. With ``rejects=PATH`` the bad rows are written there (with their problems) and
the good rows are imported instead.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.domain.usage import UsageRowError, parse_usage_record, payload_digest
from sealbill.store import parties
from sealbill.store.catalog import load_metrics
from sealbill.store.usage import ConflictingEvent, StoredEvent, ingest

MAX_LISTED = 200  # problems listed in an error; the count is always exact


class UsageImportRejected(ValueError):
    def __init__(self, problems: list[str], total: int) -> None:
        super().__init__(f"{total} problem(s) in the file; nothing was imported")
        self.problems = problems[:MAX_LISTED] + (
            [f"... and {total - MAX_LISTED} more"] if total > MAX_LISTED else [])


def read_rows(path: Path) -> Iterator[tuple[int, Mapping[str, object] | str]]:
    """(line number, row) pairs; a row that is not even a record comes as an error text."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line, parse_float=Decimal)
                except json.JSONDecodeError as exc:
                    yield line_no, f"line {line_no}: not JSON ({exc.msg})"
                    continue
                yield line_no, row if isinstance(row, dict) else f"line {line_no}: not an object"
        return
    with path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            yield line_no, row


def import_usage_file(engine: Engine, org_id: int, path: Path, *, rejects: Path | None = None,
                      on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    with engine.begin() as conn:
        accounts = parties.account_ids_by_reference(conn, org_id)
        metrics = set(load_metrics(conn, org_id))
    good, bad = _check_rows(path, accounts, metrics, on_progress)
    if bad and rejects is None:
        raise UsageImportRejected([problem for _, problem in bad], len(bad))
    if bad and rejects is not None:
        _write_rejects(rejects, bad)
    try:
        with engine.begin() as conn:
            inserted, duplicates = ingest(conn, org_id, good)
    except ConflictingEvent as exc:
        raise UsageImportRejected(exc.problems, len(exc.problems)) from None
    return {"inserted": inserted, "duplicates": duplicates, "rejected": len(bad)}


def _check_rows(path: Path, accounts: dict[str, int], metrics: set[str],
                on_progress: Callable[[int], None] | None
                ) -> tuple[list[StoredEvent], list[tuple[Any, str]]]:
    good: list[StoredEvent] = []
    bad: list[tuple[Any, str]] = []
    seen: dict[str, str] = {}
    for count, (line_no, row) in enumerate(read_rows(path), start=1):
        if on_progress and count % 10_000 == 0:
            on_progress(10_000)
        if isinstance(row, str):
            bad.append((line_no, row))
            continue
        try:
            event = parse_usage_record(row, line_no)
        except UsageRowError as exc:
            bad.append((row, str(exc)))
            continue
        problem = _reference_problem(event.account_reference, event.metric_code, accounts,
                                     metrics, line_no)
        digest = payload_digest(event)
        if problem is None and seen.get(event.event_id, digest) != digest:
            problem = (f"line {line_no}: event_id: {event.event_id!r} appears earlier in the "
                       "file with a different payload")
        if problem:
            bad.append((row, problem))
            continue
        if event.event_id in seen:
            continue  # the same event twice in one file is stored once
        seen[event.event_id] = digest
        good.append(StoredEvent(accounts[event.account_reference], event.event_id,
                                event.metric_code, event.timestamp, event.value,
                                event.properties, digest, f"line {line_no}"))
    return good, bad


def _reference_problem(account: str, metric: str, accounts: Mapping[str, int],
                       metrics: set[str], line_no: int) -> str | None:
    if account not in accounts:
        return f"line {line_no}: account_reference: unknown account {account!r}"
    if metric not in metrics:
        return f"line {line_no}: metric_code: unknown metric {metric!r}"
    return None


def _write_rejects(path: Path, bad: list[tuple[Any, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row, problem in bad:
            record = {"problem": problem,
                      "row": row if isinstance(row, dict) else {"line": row}}
            handle.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
