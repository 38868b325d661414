"""``sealbill pause``, ``resume`` and ``ledger verify`` go through the application layer, as the
API does: the same role checks with ``--key``, an audit entry for each change of the switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sealbill.app import audit
from sealbill.app.common import org_id_by_slug
from sealbill.app.context import local_actor
from sealbill.cli import app
from sealbill.store.db import create_engine
from tests.e2e.catalog_fixture import ORG

PASSWORD = "correct horse battery staple"


def _cli(db: str, tmp_path: Path) -> Any:
    runner = CliRunner()
    env = {"SEALBILL_FILES_DIR": str(tmp_path / "files"), "SEALBILL_API_KEY": "",
           "SEALBILL_ACTOR": "", "SEALBILL_OPERATOR_PASSWORD": PASSWORD}

    def cli(*args: str, key: str | None = None, code: int = 0) -> Any:
        argv = [*args, "--db", db, "--json"] + (["--key", key] if key else [])
        result = runner.invoke(app, argv, env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return json.loads(result.stdout) if result.stdout.strip() else None

    return cli


def test_pause_and_resume_are_audited_and_resume_needs_an_approver_key(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'sealbill.sqlite'}"
    cli = _cli(db, tmp_path)
    org_file = tmp_path / "org.json"
    org_file.write_text(json.dumps(ORG))
    cli("organizations", "create", "-f", str(org_file))
    cli("operators", "create", "--email", "bill@acme.example", "--name", "bill")
    billing = cli("keys", "create", "--org", "acme", "--operator", "bill@acme.example",
                  "--role", "billing")["key"]

    assert cli("pause", "--org", "acme", "--reason", "a stranger's invoice") == {
        "ok": True, "paused": True}
    assert "give a reason" in json.dumps(cli("resume", "--org", "acme", "--reason", " ",
                                             code=2))
    refused = cli("resume", "--org", "acme", "--reason", "checked", key=billing, code=1)
    assert "may not" in refused["error"]
    assert cli("resume", "--org", "acme", "--reason", "report checked") == {
        "ok": True, "paused": False, "run_id": None}

    engine = create_engine(db)
    root = local_actor()
    with engine.begin() as conn:
        org_id = org_id_by_slug(conn, root, "acme")
    entries = audit.entries(engine, root, org_id)["items"]
    switch = [(e["action"], e["actor"], e["after"]["paused"]) for e in entries
              if e["action"].startswith("sending.")]
    assert switch == [("sending.pause", root.name, True), ("sending.resume", root.name, False)]
    engine.dispose()
    assert cli("ledger", "verify", "--org", "acme") == {"ok": True, "rows": 0, "problems": []}
