"""The usage import's accounts, looked up a chunk at a time (pipeline/billing/usage_accounts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.pipeline.billing import usage_import
from sealbill.pipeline.billing.usage_accounts import ChunkAccounts
from sealbill.pipeline.billing.usage_import import import_usage_file
from sealbill.store.parties import records as parties
from sealbill.store.schema import usage_events
from tests.integration.billing.test_usage_import import org_with_api_calls


def _line(n: int, account: str) -> str:
    return json.dumps({"event_id": f"e{n}", "account_reference": account,
                       "metric_code": "api_calls", "timestamp": "2026-10-02T10:00:00Z",
                       "value": "1"}) + "\n"


def test_a_chunk_map_holds_only_the_references_the_chunk_names(
        any_engine: Engine, tmp_path: Path) -> None:
    org = org_with_api_calls(any_engine, tmp_path)
    with any_engine.begin() as conn:
        whole = parties.account_ids_by_reference(conn, org)
        accounts = ChunkAccounts(conn, org)
        first = accounts.of([_line(1, "A0001"), _line(2, "NOPE")])
        csv_records = accounts.of([{"account_reference": "A0002"}])
    assert first == {"A0001": whole["A0001"]}
    assert csv_records == {"A0002": whole["A0002"]}  # the previous chunk's map is not kept


def test_references_the_scan_misses_are_looked_up_alone_by_the_careful_path(
        any_engine: Engine, tmp_path: Path) -> None:
    """An escaped reference (``\\u0041`` is ``A``) and one padded with spaces are not in the
    chunk's map as written; the careful path finds their account all the same."""
    org = org_with_api_calls(any_engine, tmp_path)
    path = tmp_path / "u.jsonl"
    path.write_text(_line(1, "A0001").replace("A0001", "\\u0041\\u0030001")
                    + _line(2, " A0002 ") + _line(3, "A0002"), encoding="utf-8")
    assert import_usage_file(any_engine, org, path)["inserted"] == 3
    with any_engine.begin() as conn:
        stored = dict(conn.execute(sa.select(usage_events.c.event_id,
                                             usage_events.c.account_id)).all())
        whole = parties.account_ids_by_reference(conn, org)
    assert stored == {"e1": whole["A0001"], "e2": whole["A0002"], "e3": whole["A0002"]}


def test_each_chunk_is_parsed_with_its_own_accounts(
        any_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one line: the second chunk's account is not in the first chunk's map, and
    both rows are stored against the right account."""
    monkeypatch.setattr(usage_import, "CHUNK", 1)
    org = org_with_api_calls(any_engine, tmp_path)
    path = tmp_path / "u.jsonl"
    path.write_text(_line(1, "A0001") + _line(2, "A0002") + _line(3, "A0001"),
                    encoding="utf-8")
    assert import_usage_file(any_engine, org, path)["inserted"] == 3
    with any_engine.begin() as conn:
        whole = parties.account_ids_by_reference(conn, org)
        per_account = dict(conn.execute(sa.select(
            usage_events.c.account_id, sa.func.count()).group_by(usage_events.c.account_id)
        ).all())
    assert per_account == {whole["A0001"]: 2, whole["A0002"]: 1}
