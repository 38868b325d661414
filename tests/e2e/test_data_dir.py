"""Paths resolve against the data directory: the CLI run from any folder finds the same
documents; ``check data`` reports stored values the boundary would refuse today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sealbill.cli import app
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import accounts, documents, usage_events
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture


def _prepared(tmp_path: Path, render: bool = False) -> tuple[str, int]:
    (tmp_path / "data").mkdir()
    url = f"sqlite:///{tmp_path / 'data' / 'sealbill.sqlite'}"
    engine = create_engine(url)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=2, files_dir=tmp_path / "scratch", render=render)
    engine.dispose()
    return url, scenario.run_id


def test_documents_rendered_from_one_folder_are_sent_from_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpCapture) -> None:  # noqa: F811
    url, run_id = _prepared(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.delenv("SEALBILL_FILES_DIR", raising=False)
    monkeypatch.delenv("SEALBILL_DATA_DIR", raising=False)
    monkeypatch.setenv("SEALBILL_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SEALBILL_DKIM", "off")
    monkeypatch.chdir(tmp_path / "a")
    runner = CliRunner()
    rendered = runner.invoke(app, ["documents", "render", str(run_id), "--org", "acme-cloud",
                                   "--workers", "1", "--db", url, "--json"])
    assert rendered.exit_code == 0, rendered.output
    stored = tmp_path / "data" / "files" / "acme-cloud"
    assert len(list(stored.glob("*.pdf"))) == 2  # beside the database, not in the cwd
    assert not any((tmp_path / "a").iterdir())
    engine = create_engine(url)
    with engine.begin() as conn:
        paths = conn.execute(sa.select(documents.c.path)).scalars().all()
    assert paths and all(Path(p).is_absolute() and Path(p).is_relative_to(stored)
                         for p in paths)
    monkeypatch.chdir(tmp_path / "b")
    planned = runner.invoke(app, ["run", "plan", str(run_id), "--org", "acme-cloud", "--db",
                                  url, "--json"])
    assert planned.exit_code == 0, planned.output
    sent = runner.invoke(app, ["run", "send", str(run_id), "--org", "acme-cloud", "--db", url,
                               "--json"])
    assert sent.exit_code == 0, sent.output
    assert len(smtp_server.accepted) == 2


def test_check_data_reports_stored_text_and_usage_that_would_be_refused_today(
        tmp_path: Path) -> None:
    url, _ = _prepared(tmp_path)
    runner = CliRunner()
    clean = runner.invoke(app, ["check", "data", "--org", "acme-cloud", "--db", url, "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["count"] == 0
    engine = create_engine(url)
    with engine.begin() as conn:  # what a raw migration could have written
        conn.execute(sa.update(accounts).where(accounts.c.reference == "A0001")
                     .values(name="Evil\u202eCorp"))
        conn.execute(sa.update(accounts).where(accounts.c.reference == "A0002")
                     .values(address_line2="IBAN FR76 3000 6000 0112 3456 7890 189"))
        account_id = conn.execute(sa.select(accounts.c.id)).scalars().first()
        org_id = conn.execute(sa.select(accounts.c.organization_id)).scalars().first()
        conn.execute(sa.insert(usage_events).values(
            organization_id=org_id, account_id=account_id, event_id="neg", metric_code="x",
            occurred_at=sa.func.now(), value="-5"))
    dirty = runner.invoke(app, ["check", "data", "--org", "acme-cloud", "--db", url, "--json"])
    assert dirty.exit_code == 1
    found = {(f["table"], f["record"], f["field"])
             for f in json.loads(dirty.stdout)["findings"]}
    assert found == {("account", "'A0001'", "name"), ("account", "'A0002'", "address_line2"),
                     ("usage_events", "'neg'", "value")}
