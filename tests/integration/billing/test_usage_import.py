"""Usage import: idempotent, atomic, and precise about what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from sealbill.pipeline.billing.usage_import import UsageImportRejected, import_usage_file
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.schema import usage_events
from tests.support.scenario import build_scenario


def _events(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _event(n: int, value: str = "3", account: str = "A0001") -> dict[str, str]:
    return {"event_id": f"e{n}", "account_reference": account, "metric_code": "api_calls",
            "timestamp": f"2026-10-0{1 + n % 8}T10:00:00+02:00", "value": value}


def _stored(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(usage_events))
                   .scalar_one())


def org_with_api_calls(engine: Engine, folder: Path) -> int:
    """An organization of two accounts (A0001, A0002) and a summed metric ``api_calls``."""
    s = build_scenario(engine, accounts=2, files_dir=folder, render=False)
    with engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "api_calls", "API calls", "sum")
    return s.org_id


@pytest.fixture
def org(any_engine: Engine, tmp_path: Path) -> int:
    return org_with_api_calls(any_engine, tmp_path)


def test_importing_the_same_file_twice_stores_each_event_once(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    path = _events(tmp_path / "u.jsonl", [_event(n) for n in range(50)] + [_event(3)])
    first = import_usage_file(any_engine, org, path)
    second = import_usage_file(any_engine, org, path)
    # Every row is counted once: inserted, or a duplicate (of a stored event or of an
    # earlier line of the same file), or rejected.
    assert (first["inserted"], first["duplicates"]) == (50, 1)
    assert (second["inserted"], second["duplicates"]) == (0, 51)
    assert _stored(any_engine) == 50


def test_a_bad_row_rejects_the_whole_file_naming_line_and_field(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    rows = [_event(n) for n in range(10)]
    rows[6]["value"] = "12,5"
    rows[8]["account_reference"] = "NOPE"
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", rows))
    assert any(p.startswith("line 7: value") for p in caught.value.problems)
    assert any("line 9: account_reference" in p for p in caught.value.problems)
    assert _stored(any_engine) == 0


def test_same_event_id_with_another_payload_is_refused(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    import_usage_file(any_engine, org, _events(tmp_path / "a.jsonl", [_event(1)]))
    with pytest.raises(UsageImportRejected, match="problem"):
        import_usage_file(any_engine, org,
                          _events(tmp_path / "b.jsonl", [_event(2), _event(1, value="4")]))
    assert _stored(any_engine) == 1


def test_rejects_file_takes_bad_rows_and_good_rows_are_imported(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    rows = [_event(n) for n in range(5)]
    rows[2]["timestamp"] = "2026-10-01T10:00:00"  # no offset: refused, never guessed
    result = import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", rows),
                               rejects=tmp_path / "rejects.jsonl")
    assert (result["inserted"], result["rejected"]) == (4, 1)
    rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text()
                .splitlines()]
    assert rejected[0]["row"]["event_id"] == "e2" and "timestamp" in rejected[0]["problem"]


def test_stored_events_read_back_exactly(any_engine: Engine, org: int, tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sealbill.store.billing.usage import stream_period

    row = _event(1, value="0.000012")
    row["properties"] = {"region": "eu-west", "user": "Zoë"}  # type: ignore[assignment]
    import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", [row]))
    with any_engine.begin() as conn:
        [stored] = list(stream_period(conn, org, datetime(2026, 10, 1, tzinfo=UTC),
                                      datetime(2026, 11, 1, tzinfo=UTC)))
    assert stored.value == Decimal("0.000012")
    assert stored.occurred_at == datetime(2026, 10, 2, 8, 0, tzinfo=UTC)
    assert stored.properties == {"region": "eu-west", "user": "Zoë"}


def test_a_bad_row_in_a_later_chunk_undoes_the_chunks_already_inserted(
        any_engine: Engine, org: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbill.pipeline.billing import usage_import

    monkeypatch.setattr(usage_import, "CHUNK", 4)
    rows = [_event(n) for n in range(20)]
    rows[17]["metric_code"] = "unknown_metric"
    assert _refused(any_engine, org, tmp_path, rows) == [
        "line 18: metric_code: unknown metric 'unknown_metric'"]


def _refused(engine: Engine, org: int, folder: Path, rows: list[dict[str, str]]) -> list[str]:
    """The problems of a file of ``rows``, which must be refused with nothing stored."""
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(engine, org, _events(folder / "u.jsonl", rows))
    assert _stored(engine) == 0
    return caught.value.problems


def test_events_recorded_from_python_follow_the_same_rules(any_engine: Engine, org: int) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sealbill.domain.usage import UsageEvent
    from sealbill.pipeline.billing.usage_import import record_usage

    when = datetime(2026, 10, 3, tzinfo=UTC)
    events = [UsageEvent(f"py{n}", "A0001", "api_calls", when, Decimal(n)) for n in range(3)]
    assert record_usage(any_engine, org, events)["inserted"] == 3
    assert record_usage(any_engine, org, events)["duplicates"] == 3
    with pytest.raises(UsageImportRejected, match="problem"):
        record_usage(any_engine, org, [UsageEvent("py9", "NOPE", "api_calls", when)])
    assert _stored(any_engine) == 3


def test_the_raw_stream_converts_to_exactly_what_the_typed_stream_reads(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sealbill.store.billing.usage import event_fields, stream_period, stream_period_raw

    rows = [_event(n, value=f"{n}.000120") for n in range(6)]
    rows[2]["properties"] = {"user": "Zoë", "region": "eu"}  # type: ignore[assignment]
    rows[3]["timestamp"] = "2026-10-05T23:30:00-05:00"  # another offset, the next UTC day
    import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", rows))
    window = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    with any_engine.begin() as conn:
        typed = [(r.event_id, r.occurred_at, r.value, r.properties or {})
                 for r in stream_period(conn, org, *window)]
        raw = [(r.event_id, *event_fields(r.occurred_at, r.value, r.properties))
               for r in stream_period_raw(conn, org, *window, [a for a in (1, 2)])]
    assert raw == typed and len(raw) == 6


def test_the_same_id_with_another_payload_names_the_line_and_the_id(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    import_usage_file(any_engine, org, _events(tmp_path / "a.jsonl", [_event(1)]))
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(any_engine, org, _events(tmp_path / "b.jsonl", [
            _event(2), _event(1, value="4")]), rejects=tmp_path / "rejects.jsonl")
    # An id stored before with another payload stops the import, even with a rejects file.
    assert caught.value.problems == [
        "line 2: field 'event_id': 'e1' was already stored with a different payload"]
    assert _stored(any_engine) == 1


def test_the_same_payload_in_another_form_is_a_duplicate(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    first = {**_event(1, value="3.50"), "properties": {"a": "1", "b": "2"},
             "event_id": "é😀\u2028-1"}
    again = {**first, "timestamp": "2026-10-02T08:00:00Z", "value": "3.5",
             "properties": {"b": "2", "a": "1"}}  # same instant, number and properties
    import_usage_file(any_engine, org, _events(tmp_path / "a.jsonl", [first]))
    result = import_usage_file(any_engine, org, _events(tmp_path / "b.jsonl", [again]))
    assert (result["inserted"], result["duplicates"]) == (0, 1)


def test_an_id_repeated_later_in_the_file_with_another_payload_is_a_bad_row(
        any_engine: Engine, org: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbill.pipeline.billing import usage_import

    monkeypatch.setattr(usage_import, "CHUNK", 4)  # the repeat is in a later chunk
    rows = [_event(n) for n in range(8)]
    rows[6] = _event(1, value="9")
    path = _events(tmp_path / "u.jsonl", rows)
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(any_engine, org, path)
    assert caught.value.problems == [
        "line 7: event_id: 'e1' appears earlier in the file with a different payload"]
    assert _stored(any_engine) == 0
    result = import_usage_file(any_engine, org, path, rejects=tmp_path / "rejects.jsonl")
    assert (result["inserted"], result["rejected"]) == (7, 1)
    [rejected] = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text()
                  .splitlines()]
    assert rejected["row"]["value"] == "9" and rejected["problem"].startswith("line 7:")


def _stored_rows(engine: Engine) -> list[tuple[object, ...]]:
    columns = [usage_events.c[name] for name in (
        "event_id", "account_id", "metric_code", "occurred_at", "value")]
    with engine.begin() as conn:
        return [(*row[:-1], json.loads(row[-1]) if row[-1] else None) for row in conn.execute(
            sa.select(*[sa.type_coerce(c, sa.String()) for c in columns],
                      sa.cast(usage_events.c.properties, sa.Text))
            .order_by(usage_events.c.event_id))]


_STAMPS = ["2026-10-01T10:00:00+00:00", "2026-10-01T10:00:00Z", "2026-10-01T12:00:00+02:00",
           "2026-10-01T10:00:00.000250Z", "2026-10-01T04:30:00.5-05:30", "2026-10-01 10:00+00:00",
           " 2026-10-01T10:00:00Z"]


# Text sealbill accepts (no control, format — bidi, zero-width — or private characters).
_TEXT = st.text(st.characters(exclude_characters="<>", exclude_categories=[
    "Cs", "Cc", "Cf", "Co", "Cn"]), max_size=3)
_KEYS = st.text(st.characters(exclude_characters="<>", exclude_categories=[
    "Cs", "Cc", "Cf", "Co", "Cn", "Zs"]), min_size=1, max_size=3)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(
    st.sampled_from(_STAMPS),
    # values within the limits (a sum metric needs one; not negative; 15 + 12 digits)
    st.one_of(st.sampled_from(["12", "0.000012", "1.50", "007", "-0", "1e3"]),
              st.integers(0, 10 ** 15 - 1),
              st.decimals(min_value=0, max_value=10 ** 14, places=6)),
    st.dictionaries(_KEYS, _TEXT, max_size=2),
    st.sampled_from(["A0001", "A0002", " A0001 "])), min_size=1, max_size=12))
def test_the_fast_path_and_the_careful_path_store_the_same_rows(
        any_engine: Engine, org: int, tmp_path: Path,
        events: list[tuple[str, object, dict[str, str], str]]) -> None:
    from decimal import Decimal

    from sealbill.domain.usage_records import parse_usage_record
    from sealbill.pipeline.billing.usage_import import record_usage

    rows = [{"event_id": f"h{n}", "account_reference": account, "metric_code": "api_calls",
             "timestamp": stamp, "value": value, "properties": props}
            for n, (stamp, value, props, account) in enumerate(events)]
    lines = [json.dumps(row, default=lambda d: f"<{d}>").replace('"<', "").replace('>"', "")
             for row in rows]  # Decimals as JSON numbers, from their text
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with any_engine.begin() as conn:
        conn.execute(usage_events.delete())
    import_usage_file(any_engine, org, tmp_path / "h.jsonl")
    fast = _stored_rows(any_engine)
    with any_engine.begin() as conn:
        conn.execute(usage_events.delete())
    record_usage(any_engine, org, [parse_usage_record(json.loads(line, parse_float=Decimal), n)
                                   for n, line in enumerate(lines, start=1)])
    assert _stored_rows(any_engine) == fast and len(fast) == len(rows)


def test_a_csv_file_takes_the_careful_path_with_the_same_rules(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(
        "event_id,account_reference,metric_code,timestamp,value,properties.region\n"
        "c1,A0001,api_calls,2026-10-01T10:00:00+02:00,1.50,eu\n"
        "c2,A0001,api_calls,2026-10-01T10:00:00,2,eu\n"
        "c3,A0002,api_calls,2026-10-01T10:00:00Z,3,\n", encoding="utf-8")
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(any_engine, org, path)
    assert [p.split(":")[:2] for p in caught.value.problems] == [["line 3", " timestamp"]]
    result = import_usage_file(any_engine, org, path, rejects=tmp_path / "rejects.jsonl")
    assert (result["inserted"], result["rejected"]) == (2, 1)
    from sealbill.store.billing.usage_ingest import utc_text

    stored = _stored_rows(any_engine)
    assert [(r[0], r[3] if isinstance(r[3], str) else utc_text(r[3]), r[4], r[5])  # type: ignore[arg-type]
            for r in stored] == [
        ("c1", "2026-10-01 08:00:00.000000", "1.50", {"region": "eu"}),
        ("c3", "2026-10-01 10:00:00.000000", "3", {"region": ""})]


def test_a_lone_surrogate_is_reported_with_its_line_and_field(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    """JSON can escape a lone UTF-16 surrogate ("\\ud800"); no database stores it. The import
    names the line and the field instead of failing inside the driver."""
    good, bad = _event(1), _event(2)
    text = json.dumps(good) + "\n" + json.dumps(bad).replace('"e2"', '"e\\ud800"') + "\n"
    path = tmp_path / "usage.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageImportRejected) as refused:
        import_usage_file(any_engine, org, path)
    assert "line 2: event_id: not valid Unicode" in str(refused.value.problems)
    assert _stored(any_engine) == 0
    rejects = tmp_path / "rejects.jsonl"
    counts = import_usage_file(any_engine, org, path, rejects=rejects)
    assert counts["inserted"] == 1 and counts["rejected"] == 1
    assert "event_id: not valid Unicode" in rejects.read_text(encoding="utf-8")


def _archive(engine: Engine, org_id: int, reference: str) -> None:
    from sealbill.app import accounts
    from sealbill.app.context import local_actor

    accounts.archive(engine, local_actor(), org_id, reference)


def test_usage_for_an_archived_account_refuses_the_whole_file_naming_line_and_field(
        any_engine: Engine, org: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbill.pipeline.billing import usage_import

    monkeypatch.setattr(usage_import, "CHUNK", 4)  # the refused line in a later chunk
    _archive(any_engine, org, "A0002")
    rows = [_event(n) for n in range(10)]
    rows[6]["account_reference"] = "A0002"
    assert _refused(any_engine, org, tmp_path, rows) == [
        "line 7: account_reference: account 'A0002' is archived"]


def test_usage_for_an_archived_account_goes_to_the_rejects_file(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    _archive(any_engine, org, "A0002")
    rows = [_event(0), _event(1, account="A0002"), _event(2)]
    result = import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", rows),
                               rejects=tmp_path / "rejects.jsonl")
    assert (result["inserted"], result["rejected"]) == (2, 1)
    [rejected] = [json.loads(line) for line in
                  (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejected["row"]["event_id"] == "e1" and "archived" in rejected["problem"]


def test_usage_recorded_from_python_for_an_archived_account_is_refused(
        any_engine: Engine, org: int) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sealbill.domain.usage import UsageEvent
    from sealbill.pipeline.billing.usage_import import record_usage

    _archive(any_engine, org, "A0002")
    when, one = datetime(2026, 10, 3, tzinfo=UTC), Decimal(1)
    with pytest.raises(UsageImportRejected) as caught:
        record_usage(any_engine, org, [UsageEvent("py1", "A0001", "api_calls", when, one),
                                       UsageEvent("py2", "A0002", "api_calls", when, one)])
    assert caught.value.problems == [
        "event #2: account_reference: account 'A0002' is archived"]
    assert _stored(any_engine) == 0
