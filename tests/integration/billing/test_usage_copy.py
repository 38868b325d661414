"""Usage import on PostgreSQL through COPY: a chunk of ``COPY_FROM_ROWS`` rows or more is copied
into a temporary table and moved into ``usage_events`` by one statement — with every rule of the
import (idempotent, all or nothing, conflicts named by line and id) and the same stored rows
as the JSON statement of smaller chunks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.pipeline.billing import usage_import
from sealbill.pipeline.billing.usage_import import UsageImportRejected, import_usage_file
from sealbill.store.billing.usage_ingest import COPY_FROM_ROWS, Ingester, Row
from sealbill.store.schema import usage_events
from tests.integration.billing.test_usage_import import (
    _event,
    _events,
    _stored,
    org_with_api_calls,
)
from tests.support.scenario import build_scenario

ROWS = COPY_FROM_ROWS + 200  # one chunk, through COPY


@pytest.fixture
def org(pg_engine: Engine, tmp_path: Path) -> int:
    return org_with_api_calls(pg_engine, tmp_path)


def _problems(engine: Engine, org: int, path: Path) -> list[str]:
    """The problems of a file the import must refuse."""
    with pytest.raises(UsageImportRejected) as caught:
        import_usage_file(engine, org, path)
    return caught.value.problems


def _stored_in_id_order(engine: Engine) -> list[tuple[object, ...]]:
    with engine.begin() as conn:
        return [tuple(row) for row in conn.execute(sa.select(
            usage_events.c.event_id, usage_events.c.account_id, usage_events.c.metric_code,
            usage_events.c.occurred_at, usage_events.c.value,
            sa.cast(usage_events.c.properties, sa.Text)).order_by(usage_events.c.id))]


def _rows(account_id: int, count: int) -> list[Row]:
    """Rows as the parser hands them: UTC text, canonical JSON, values with and without."""
    props = [None, '{"region":"eu-west","user":"Zoë"}', '{"a":"\\"quoted\\"\\\\tab\\t"}']
    return [(account_id, f"r{n:05d}-é", "api_calls", f"2026-10-{1 + n % 28:02d} "
             f"{n % 24:02d}:00:00.{n:06d}", None if n % 7 == 0 else f"{n}.5",
             props[n % 3]) for n in range(count)]


def _has_copy_table(conn: sa.Connection) -> bool:
    return conn.exec_driver_sql(
        "SELECT to_regclass('pg_temp.usage_events_in') IS NOT NULL").scalar_one()


def test_a_large_chunk_is_copied_and_stores_what_the_json_statement_stores(
        pg_engine: Engine, org: int) -> None:
    with pg_engine.begin() as conn:
        account_id = int(conn.exec_driver_sql("SELECT min(id) FROM accounts").scalar_one())
    rows = _rows(account_id, COPY_FROM_ROWS)
    with pg_engine.begin() as conn:
        assert Ingester(conn, org).insert(rows) == (len(rows), 0, [])
        assert _has_copy_table(conn)  # the COPY path, not the JSON statement
    copied = _stored_in_id_order(pg_engine)
    with pg_engine.begin() as conn:
        assert not _has_copy_table(conn)  # dropped at commit
        conn.execute(usage_events.delete())
        ingester = Ingester(conn, org)
        for start in range(0, len(rows), COPY_FROM_ROWS - 1):
            ingester.insert(rows[start:start + COPY_FROM_ROWS - 1])
        assert not _has_copy_table(conn)
    # The same columns, and the ids in the rows' order (ties of an instant are broken by id).
    assert _stored_in_id_order(pg_engine) == copied and len(copied) == len(rows)
    assert [row[0] for row in copied] == [row[1] for row in rows]


def test_importing_a_copied_file_again_stores_nothing_more(
        pg_engine: Engine, org: int, tmp_path: Path) -> None:
    path = _events(tmp_path / "u.jsonl", [_event(n) for n in range(ROWS)] + [_event(3)])
    first = import_usage_file(pg_engine, org, path)
    second = import_usage_file(pg_engine, org, path)
    assert (first["inserted"], first["duplicates"]) == (ROWS, 1)
    assert (second["inserted"], second["duplicates"]) == (0, ROWS + 1)
    assert _stored(pg_engine) == ROWS


def test_a_stored_id_with_another_payload_in_a_copied_chunk_writes_nothing(
        pg_engine: Engine, org: int, tmp_path: Path) -> None:
    import_usage_file(pg_engine, org, _events(tmp_path / "a.jsonl", [_event(1)]))
    rows = [_event(n) for n in range(2, ROWS)]
    rows[ROWS - 50] = _event(1, value="4")
    assert _problems(pg_engine, org, _events(tmp_path / "b.jsonl", rows)) == [
        f"line {ROWS - 49}: field 'event_id': 'e1' was already stored with a different payload"]
    assert _stored(pg_engine) == 1


def test_an_id_repeated_in_a_copied_chunk_with_another_payload_names_the_line(
        pg_engine: Engine, org: int, tmp_path: Path) -> None:
    rows = [_event(n) for n in range(ROWS)]
    rows.insert(ROWS - 10, _event(2, value="9"))
    assert _problems(pg_engine, org, _events(tmp_path / "u.jsonl", rows)) == [
        f"line {ROWS - 9}: event_id: 'e2' appears earlier in the file with a different payload"]
    assert _stored(pg_engine) == 0


def test_a_bad_row_after_copied_chunks_undoes_them_naming_line_and_field(
        pg_engine: Engine, org: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_import, "CHUNK", COPY_FROM_ROWS)  # two chunks copied first
    rows = [_event(n) for n in range(2 * COPY_FROM_ROWS + 100)]
    rows[-3]["timestamp"] = "2026-10-01T10:00:00"  # no offset
    [problem] = _problems(pg_engine, org, _events(tmp_path / "u.jsonl", rows))
    assert problem.startswith(f"line {len(rows) - 2}: timestamp")
    assert _stored(pg_engine) == 0
    # and the file fixed goes in whole
    rows[-3]["timestamp"] = "2026-10-01T10:00:00Z"
    result = import_usage_file(pg_engine, org, _events(tmp_path / "u.jsonl", rows))
    assert result == {"inserted": len(rows), "duplicates": 0, "rejected": 0}
    assert _stored(pg_engine) == len(rows)


def test_an_event_naming_another_organizations_account_is_refused_by_the_database(
        any_engine: Engine, tmp_path: Path) -> None:
    """One foreign key, (organization_id, account_id) -> accounts: whatever writes the row."""
    ours = build_scenario(any_engine, accounts=1, files_dir=tmp_path / "a", render=False)
    theirs = build_scenario(any_engine, accounts=1, files_dir=tmp_path / "b", render=False,
                            slug="other-org")
    event = {"event_id": "x1", "metric_code": "api_calls", "value": "1",
             "occurred_at": datetime(2026, 10, 2, tzinfo=UTC)}
    [our_account], [their_account] = ours.account_ids.values(), theirs.account_ids.values()
    with pytest.raises(sa.exc.IntegrityError), any_engine.begin() as conn:
        conn.execute(sa.insert(usage_events).values(
            organization_id=ours.org_id, account_id=their_account, **event))
    with any_engine.begin() as conn:  # its own account: stored
        conn.execute(sa.insert(usage_events).values(
            organization_id=ours.org_id, account_id=our_account, **event))
    assert _stored(any_engine) == 1
