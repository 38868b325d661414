"""Any bytes given to the import parsers end in a clear refusal or valid records, never in an
exception (Hypothesis)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealbill.inputs.accounts import CSV_COLUMNS, read_account_file
from sealbill.inputs.problems import InputRejected
from sealbill.pipeline.billing.usage_import import UsageImportRejected, _chunks
from sealbill.pipeline.billing.usage_rows import RowParser
from sealbill.pipeline.parties.accounts_import import AccountRecord, check_record

DEFAULTS = {"currency": "EUR", "locale": "fr"}
PARSER = RowParser({"A1": 1}, {"api_calls", "seats"})
ACCOUNT_HEADER = ",".join(CSV_COLUMNS[:7]).encode()
USAGE_HEADER = b"event_id,account_reference,metric_code,timestamp,value,properties.region"

texts = st.text(max_size=40)
cells = st.one_of(texts, st.sampled_from(["", "FR", "ZZ", "yes", "maybe", "4111 1111 1111 1111",
                                          "\u202e", "1e400", "-5", "=1+1", '"', "\x00"]))
noise = st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(cells, max_size=9).map(lambda row: ",".join(row)), max_size=5).map(
        lambda rows: "\n".join(rows).encode("utf-8", "surrogatepass")),
    st.recursive(st.none() | st.booleans() | st.integers() | texts | st.floats(),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.sampled_from([*CSV_COLUMNS, "contacts", "x"]), inner,
                                   max_size=6), max_leaves=30).map(
        lambda value: __import__("json").dumps(value).encode()),
)


def _with_header(header: bytes) -> st.SearchStrategy[bytes]:
    encodings = st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
    return st.tuples(encodings, st.booleans(), noise).map(
        lambda parts: parts[0] + (header + b"\n" if parts[1] else b"") + parts[2])


def _accounts(path: Path) -> list[Any]:
    out: list[Any] = []
    try:
        for where, item in read_account_file(path):
            record, problems = check_record(where, item, DEFAULTS)
            assert (record is None) == bool(problems)
            assert all(isinstance(p, str) and where in p for p in problems)
            out.append(record)
    except InputRejected as exc:
        assert exc.problems and all(str(path.name) in p for p in exc.problems)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(data=_with_header(ACCOUNT_HEADER), suffix=st.sampled_from([".csv", ".json"]))
@example(data=b"\xff\xfe\x00", suffix=".csv")
@example(data=b"[" * 5000, suffix=".json")
def test_any_bytes_as_an_account_file_give_records_or_a_clear_refusal(
        tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"accounts{suffix}"
    path.write_bytes(data)
    for record in _accounts(path):
        if isinstance(record, AccountRecord):
            assert record.values["country"].isalpha() and len(record.values["country"]) == 2


@settings(max_examples=400, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(data=_with_header(USAGE_HEADER), suffix=st.sampled_from([".csv", ".jsonl"]))
@example(data=b"[" * 5000 + b"\n", suffix=".jsonl")
def test_any_bytes_as_a_usage_file_give_rows_or_problems_never_an_exception(
        tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"usage{suffix}"
    path.write_bytes(data)
    try:
        for first, raws in _chunks(path):
            batch = PARSER.parse(first, raws)
            assert all(problem.startswith("line ") for _, _, problem in batch.bad)
            assert all(row[0] == 1 for row in batch.rows)  # only a known account is stored
    except UsageImportRejected as exc:
        assert exc.problems
