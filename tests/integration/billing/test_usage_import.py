"""Usage import: idempotent, atomic, and precise about what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.pipeline.usage_import import UsageImportRejected, import_usage_file
from sealbill.store import catalog as catalog_store
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


@pytest.fixture
def org(any_engine: Engine, tmp_path: Path) -> int:
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        catalog_store.add_metric(conn, s.org_id, "api_calls", "API calls", "sum")
    return s.org_id


def test_importing_the_same_file_twice_stores_each_event_once(
        any_engine: Engine, org: int, tmp_path: Path) -> None:
    path = _events(tmp_path / "u.jsonl", [_event(n) for n in range(50)] + [_event(3)])
    first = import_usage_file(any_engine, org, path)
    second = import_usage_file(any_engine, org, path)
    assert (first["inserted"], second["inserted"], second["duplicates"]) == (50, 0, 50)
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

    from sealbill.store.usage import stream_period

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
    from sealbill.pipeline import usage_import

    monkeypatch.setattr(usage_import, "CHUNK", 4)
    rows = [_event(n) for n in range(20)]
    rows[17]["metric_code"] = "unknown_metric"
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(any_engine, org, _events(tmp_path / "u.jsonl", rows))
    assert caught.value.problems == ["line 18: metric_code: unknown metric 'unknown_metric'"]
    assert _stored(any_engine) == 0


def test_events_recorded_from_python_follow_the_same_rules(any_engine: Engine, org: int) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from sealbill.domain.usage import UsageEvent
    from sealbill.pipeline.usage_import import record_usage

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

    from sealbill.store.usage import event_fields, stream_period, stream_period_raw

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
