"""Meter: import usage events from CSV or JSONL, all or nothing.

The file is read a chunk at a time; each chunk is parsed (``pipeline/billing/usage_rows.py``: a fast
path for the usual JSONL shapes, the domain's parser for everything else) and inserted — all
inside ONE transaction, so memory stays flat whatever the file size. The database inserts a
chunk in one statement that runs in a helper thread, without Python's GIL on SQLite, while this
thread parses the next chunk: parsing and inserting use one core each. A process pool for the
parsing was measured slower (bench/RESULTS.md): pickling the parsed events back cost as much as
parsing them.

The first problem stops the writing but not the checking: every problem of the file is reported
(line and field), and the transaction is rolled back, so a file is applied whole or not at all.
With ``rejects=PATH`` the bad rows are written there (with their problems) and the good rows are
imported instead. The same event twice (in the file or already stored) is stored once; the same
id with another payload is a problem naming the line and the id.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.domain.usage import UsageEvent
from sealbill.inputs.files import not_text, open_text
from sealbill.inputs.problems import InputRejected
from sealbill.inputs.usage import MetricRule
from sealbill.outputs.files import check_writable, write_output
from sealbill.pipeline.billing.usage_rows import Batch, RowParser, reject_row
from sealbill.store.billing.catalog import load_metrics
from sealbill.store.billing.usage_ingest import Conflict, Ingester, Row
from sealbill.store.parties import records as parties

CHUNK = 20_000


class UsageImportRejected(InputRejected):
    """Bad input (exit code 2): every problem (the first ``MAX_LISTED``), nothing written."""

    def __init__(self, problems: list[str], total: int) -> None:
        super().__init__(problems, total, "nothing was imported")
        self.args = (f"{total} problem(s) in the file; nothing was imported",)


CSV_FIELDS = ("event_id", "account_reference", "metric_code", "timestamp", "value")
_EXTRA = "(cells beyond the header)"


def _csv_header(path: Path, header: list[str] | None) -> None:
    if header is None:
        raise UsageImportRejected([f"{path}: empty file, expected a header line: "
                                   f"{', '.join(CSV_FIELDS)}[, properties.NAME ...]"], 1)
    problems = [f"line 1: column {name!r}: unknown column (expected "
                f"{', '.join(CSV_FIELDS)} or properties.NAME)" for name in header
                if name not in CSV_FIELDS and not (name.startswith("properties.")
                                                   and len(name) > len("properties."))]
    problems += [f"line 1: column {name!r}: the same column twice"
                 for name in sorted({n for n in header if header.count(n) > 1})]
    problems += [f"line 1: column {name!r}: required column missing"
                 for name in CSV_FIELDS[:4] if name not in header]
    if problems:
        raise UsageImportRejected(problems, len(problems))


def _csv_rows(path: Path, handle: Any) -> Iterator[dict[str, Any]]:
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader, None)
        _csv_header(path, header)
        assert header is not None
        width = len(header)
        for row in reader:
            record: dict[str, Any] = dict(zip(header, row, strict=False))
            if len(row) > width:
                record[_EXTRA] = row[width:]
            yield record
    except csv.Error as exc:
        raise UsageImportRejected([f"line {reader.line_num}: not valid CSV ({exc})"], 1
                                  ) from None


def _chunks(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """(line number of the first, raw rows): JSON text lines (blank ones too), or CSV records
    as dicts, ``CHUNK`` at a time. A file that is not UTF-8 (or UTF-16 with a BOM) is refused
    with the line of the first bad byte."""
    jsonl = _is_jsonl(path)
    try:
        handle, encoding = open_text(path, newline=None if jsonl else "")
    except InputRejected as exc:
        raise UsageImportRejected(exc.problems, len(exc.problems)) from None
    with handle:
        rows: Iterator[Any] = handle if jsonl else _csv_rows(path, handle)
        first = 1 if jsonl else 2  # a CSV record's number, after the header
        try:
            while chunk := list(islice(rows, CHUNK)):
                yield first, chunk
                first += len(chunk)
        except UnicodeDecodeError:
            raise UsageImportRejected(not_text(path, encoding).problems, 1) from None


def _is_jsonl(path: Path) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    if path.suffix.lower() == ".csv":
        return False
    raise UsageImportRejected([f"{path}: unknown file type {path.suffix!r}; expected .csv, "
                               ".jsonl or .ndjson"], 1)


def _parser(conn: Connection, org_id: int) -> RowParser:
    """The parser of the organization's rows, read in the importing transaction: an account
    archived takes no new usage (the same rule as the API's), and one archived meanwhile
    counts."""
    return RowParser(parties.account_ids_by_reference(conn, org_id),
                     {code: MetricRule.of(row) for code, row in load_metrics(conn, org_id).items()},
                     archived=parties.archived_references(conn, org_id))


def _conflict_problem(where: str, conflict: Conflict, place: str) -> str:
    if conflict.earlier:
        return (f"{where}: event_id: {conflict.event_id!r} appears earlier in {place} with a "
                "different payload")
    return (f"{where}: field 'event_id': {conflict.event_id!r} was already stored with a "
            "different payload")


class _Import:
    """Counts and problems of one file import."""

    def __init__(self, keep_going: bool) -> None:
        self.keep_going = keep_going  # with a rejects file: bad rows do not stop the import
        self.inserted = self.duplicates = 0
        self.bad: list[tuple[int, Any, str]] = []  # (line, raw row, problem)
        self.conflicts: list[str] = []  # ids stored before with another payload: always fatal

    def writing(self) -> bool:
        return (not self.bad or self.keep_going) and not self.conflicts

    def collect(self, batch: Batch, done: Future[tuple[int, int, list[Conflict]]]) -> None:
        inserted, duplicates, conflicts = done.result()
        self.inserted += inserted
        self.duplicates += duplicates
        for conflict in conflicts:
            line, raw = batch.origin(conflict.index)
            problem = _conflict_problem(f"line {line}", conflict, "the file")
            if conflict.earlier:  # a bad row of this file, like any other
                self.bad.append((line, reject_row(raw), problem))
            else:
                self.conflicts.append(problem)


class _Rollback(Exception):
    """Raised inside the transaction to undo it when the file has problems."""


def import_usage_file(engine: Engine, org_id: int, path: Path, *, rejects: Path | None = None,
                      on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    if rejects is not None:
        check_writable(rejects)  # written after the commit: a bad path must stop us first
    state = _Import(keep_going=rejects is not None)
    try:
        with engine.begin() as conn, ThreadPoolExecutor(1, "usage-insert") as pool:
            parser = _parser(conn, org_id)
            ingester = Ingester(conn, org_id)
            pending: tuple[Batch, Future[Any]] | None = None
            for first, raws in _chunks(path):
                batch = parser.parse(first, raws)
                state.bad.extend(batch.bad)
                if pending:  # the previous chunk's insert ran while this one was parsed
                    state.collect(*pending)
                    pending = None
                if state.writing() and batch.rows:
                    pending = batch, pool.submit(ingester.insert, batch.rows)
                    time.sleep(0)  # let the helper thread take the GIL and start at once
                if on_progress:
                    on_progress(batch.read)
            if pending:
                state.collect(*pending)
            if state.conflicts or (state.bad and not state.keep_going):
                raise _Rollback
    except _Rollback:
        problems = state.conflicts + [problem for _, _, problem in sorted(
            state.bad, key=lambda bad: bad[0])]
        raise UsageImportRejected(problems, len(problems)) from None
    if state.bad and rejects is not None:
        _write_rejects(rejects, [(row, problem) for _, row, problem in sorted(
            state.bad, key=lambda bad: bad[0])])
    return {"inserted": state.inserted, "duplicates": state.duplicates,
            "rejected": len(state.bad)}


def record_usage(engine: Engine, org_id: int, events: Iterable[UsageEvent]) -> dict[str, int]:
    """Ingest events built in Python, with the same checks and the same all-or-nothing rule:
    ``record_usage(engine, org_id, [UsageEvent("e1", "C000001", "api_calls", when, D(12))])``.
    """
    rows: list[Row] = []
    numbers: list[int] = []
    problems: list[str] = []
    inserted = duplicates = 0
    with engine.begin() as conn:
        parser = _parser(conn, org_id)
        for number, event in enumerate(events, start=1):
            row = parser.event_row(event)
            if isinstance(row, str):
                problems.append(f"event #{number}: {row}")
            else:
                rows.append(row)
                numbers.append(number)
        if problems:
            raise UsageImportRejected(problems, len(problems))
        ingester = Ingester(conn, org_id)
        for start in range(0, len(rows), CHUNK):
            added, same, conflicts = ingester.insert(rows[start:start + CHUNK])
            inserted, duplicates = inserted + added, duplicates + same
            problems += [_conflict_problem(f"event #{numbers[start + c.index]}", c, "the events")
                         for c in conflicts]
        if problems:  # raised inside the transaction: nothing is stored
            raise UsageImportRejected(problems, len(problems))
    return {"inserted": inserted, "duplicates": duplicates, "rejected": 0}


def _write_rejects(path: Path, bad: list[tuple[Any, str]]) -> None:
    """The rejects file, written without following a link planted at its name."""
    text = "".join(json.dumps({"problem": problem, "row": row}, default=str,
                              ensure_ascii=False) + "\n" for row, problem in bad)
    write_output(path, text.encode("utf-8"))
