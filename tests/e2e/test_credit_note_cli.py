"""A manual credit note from the command line, mailed by the next run (issue 12): the issuing
command says so, `run bill` (and its dry run) lists it, `run plan` shows it, `run send` mails
it with its own subject, into a Maildir through the development SMTP sink."""

from __future__ import annotations

import json
import subprocess
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

from sealbill.mail.sink import read_maildir
from tests.e2e.test_delivery_cli import rendered_database, sealbill, smtp_sink

ORG = ("--org", "acme-cloud")


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stdout + result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_a_manual_credit_note_is_mailed_by_the_next_run_from_the_cli(tmp_path: Path) -> None:
    db, scenario = rendered_database(tmp_path, 2)
    maildir = tmp_path / "maildir"
    with smtp_sink(maildir) as port:
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
    subjects = [str(make_header(decode_header(message_from_bytes(raw)["Subject"])))
                for _, raw in read_maildir(maildir)]
    credit = [s for s in subjects if "AV-000001" in s]
    assert len(credit) == 1
    assert credit[0].startswith("Avoir n° AV-000001 corrigeant la facture n° F-000001 — ")
