"""The bad-input corpus (tests/data/bad_inputs): every malformed file or argument is refused
with exit code 2 and one message naming the record and the field, nothing is written, and no
traceback reaches the operator.

The CLI runs in-process (Typer's CliRunner) against a copy of one prepared SQLite database;
"nothing written" compares a full SQL dump before and after.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sealbill.cli import app
from sealbill.cli.common import err_console
from sealbill.pipeline.incident import actions as incidents
from sealbill.pipeline.parties.accounts_import import import_accounts
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing import catalog
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import accounts as accounts_table
from tests.e2e.test_cli_billing import ORG
from tests.support.scenario import account_records

CORPUS = Path(__file__).parents[1] / "data" / "bad_inputs"
CASES: list[dict[str, Any]] = json.loads((CORPUS / "cases.json").read_text())
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Organization ``acme``: accounts A0001..A0003 and A0004 (archived), metrics api_calls
    (sum), users (count), gb_hours (sum, 0 to 1000, 2 decimal places) and seats (max, integers
    1 to 500), incident 1 open (aware an hour ago), incident 2 closed."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    path = folder / "prepared.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    accounts = folder / "accounts.json"
    archived = {**account_records(1)[0], "reference": "A0004", "contacts": []}
    accounts.write_text(json.dumps([*account_records(3), archived]), encoding="utf-8")
    with engine.begin() as conn:
        org_id = create_org(conn, ORG)
        import_accounts(conn, org_id, accounts, actor="test")
        conn.execute(sa.update(accounts_table).where(accounts_table.c.reference == "A0004")
                     .values(archived_at=datetime.now(UTC)))
        catalog.add_metric(conn, org_id, "api_calls", "API calls", "sum")
        catalog.add_metric(conn, org_id, "users", "Users", "count")
        catalog.add_metric(conn, org_id, "gb_hours", "GB hours", "sum", min_value=Decimal(0),
                           max_value=Decimal(1000), decimal_places=2)
        catalog.add_metric(conn, org_id, "seats", "Seats", "max", min_value=Decimal(1),
                           max_value=Decimal(500), decimal_places=0)
    aware = datetime.now(UTC) - timedelta(hours=1)
    for title in ("open one", "closed one"):
        incidents.open_incident(engine, org_id, title=title, aware_at=aware,
                                scope=incidents.Scope(), actor="test")
    incidents.close(engine, org_id, 2, reason="done", actor="test")
    engine.dispose()
    return path


def _generated(name: str, folder: Path) -> Path:
    """The corpus inputs too big to keep in the repository."""
    path = folder / name
    record = {"reference": "N0001", "name": "Nouveau", "address_line1": "1 rue",
              "postcode": "75011", "city": "Paris", "country": "FR"}
    event = {"event_id": "u1", "account_reference": "A0001", "metric_code": "api_calls",
             "timestamp": "2026-10-01T10:00:00Z", "value": "1"}
    contents = {
        "ten_mb_name.json": json.dumps([{**record, "name": "N" * TEN_MB}]),
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "ten_mb_event_id.jsonl": json.dumps({**event, "event_id": "e" * TEN_MB}) + "\n",
        "deep_line.jsonl": "[" * 100_000 + "]" * 100_000 + "\n",
    }
    path.write_text(contents[name], encoding="utf-8")
    return path


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def _arguments(case: dict[str, Any], tmp_path: Path) -> list[str]:
    file = (_generated(case["generate"], tmp_path) if "generate" in case
            else CORPUS / case["file"] if "file" in case else None)
    (tmp_path / "a-file.txt").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    values = {"{file}": str(file), "{existing_file}": str(tmp_path / "a-file.txt"),
              "{folder}": str(tmp_path / "a-folder")}
    args = []
    for arg in case["args"]:
        for key, value in values.items():
            arg = arg.replace(key, value)
        args.append(arg.replace("{corpus}", str(CORPUS)))
    if args[:2] in (["import", "accounts"], ["import", "usage"]) and "--org" not in args:
        args += ["--org", "acme"]
    return args


def test_the_corpus_covers_sixty_inputs_across_formats_and_arguments() -> None:
    kinds = {case["id"].split("/")[0] for case in CASES}
    assert len(CASES) >= 60 and kinds == {"accounts", "usage", "args"}
    suffixes = {Path(case["id"]).suffix for case in CASES if "file" in case or
                "generate" in case}
    assert {".csv", ".json", ".jsonl"} <= suffixes


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_is_refused_with_exit_2_naming_record_and_field_writing_nothing(
        case: dict[str, Any], prepared: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "sealbill.sqlite"
    shutil.copyfile(prepared, database)
    before = _dump(database)
    monkeypatch.setattr(err_console, "width", 10_000)  # one line per message
    monkeypatch.setenv("COLUMNS", "10000")
    monkeypatch.setenv("SEALBILL_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, [*_arguments(case, tmp_path), "--db",
                                      f"sqlite:///{database}"])
    output = result.output
    assert result.exit_code == 2, output[-2000:]
    assert isinstance(result.exception, SystemExit)  # a clean exit, never an exception
    assert "Traceback" not in output
    flat = " ".join(output.split())
    for expected in case["expect"]:
        assert expected in flat, flat[-1500:]
    assert _dump(database) == before
    assert not (tmp_path / "a-folder").exists() or not any((tmp_path / "a-folder").iterdir())
