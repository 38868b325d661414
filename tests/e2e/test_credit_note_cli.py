"""A manual credit note from the command line, mailed by the next run (issue 12): the issuing
command says so, `run bill` (and its dry run) lists it, `run plan` shows it, `run send` mails
it with its own subject, into a Maildir through the development SMTP sink."""

from __future__ import annotations

import json
import subprocess
import sys
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

from sealbill.mail.sink import free_port, read_maildir
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.e2e.test_delivery_cli import _wait_for_port, sealbill
from tests.support.scenario import build_scenario

ORG = ("--org", "acme-cloud")


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stdout + result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_a_manual_credit_note_is_mailed_by_the_next_run_from_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=2, files_dir=tmp_path / "files")
    engine.dispose()
    port = free_port()
    maildir = tmp_path / "maildir"
    sink = subprocess.Popen([sys.executable, "-m", "sealbill", "smtp-sink", "--maildir",
                             str(maildir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port)
        october = str(scenario.run_id)
        _json(sealbill(db, port, "run", "plan", october, *ORG, "--json"))
        _json(sealbill(db, port, "run", "send", october, *ORG, "--json"))
        issued = sealbill(db, port, "credit-note", "F-000001", *ORG, "--reason", "erreur")
        assert issued.returncode == 0, issued.stderr
        assert "mailed with the next billing run" in " ".join(issued.stdout.split())
        dry = _json(sealbill(db, port, "run", "bill", *ORG, "--period", "2026-11",
                             "--dry-run", "--json"))
        assert dry["credit_notes_to_deliver"] == ["AV-000001"]
        billed = _json(sealbill(db, port, "run", "bill", *ORG, "--period", "2026-11",
                                "--json"))
        assert billed["credit_notes_to_deliver"] == ["AV-000001"]
        run = str(billed["run_id"])
        _json(sealbill(db, port, "run", "finalize", run, *ORG, "--json"))
        _json(sealbill(db, port, "documents", "render", run, *ORG, "--json"))
        planned = sealbill(db, port, "run", "plan", run, *ORG)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "credit notes among them: AV-000001" in " ".join(planned.stdout.split())
        sent = _json(sealbill(db, port, "run", "send", run, *ORG, "--json"))
        outbox: dict[str, int] = sent["outbox"]  # type: ignore[assignment]
        assert {k: v for k, v in outbox.items() if v} == {"sent": 3}
    finally:
        sink.terminate()
        sink.wait(10)
    subjects = [str(make_header(decode_header(message_from_bytes(raw)["Subject"])))
                for _, raw in read_maildir(maildir)]
    credit = [s for s in subjects if "AV-000001" in s]
    assert len(credit) == 1
    assert credit[0].startswith("Avoir n° AV-000001 corrigeant la facture n° F-000001 — ")
