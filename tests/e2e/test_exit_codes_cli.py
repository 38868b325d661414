"""The run commands' exit codes tell the truth, and the held/halted report reads as a person
needs it: 3 held, 4 halted or set aside, 5 undelivered, 0 only when every message went."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import contacts
from tests.e2e.test_delivery_cli import sealbill
from tests.support.operators import approver_key
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

ORG = ("--org", "acme-cloud")


def _raw_email(db: str, old: str, new: str) -> None:
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.update(contacts).where(contacts.c.email == old).values(email=new))
    engine.dispose()


def test_held_halted_set_aside_and_delivered_each_have_their_exit_code(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=3, files_dir=tmp_path / "files")
    reviewer = approver_key(engine, scenario.org_id)
    engine.dispose()
    port, run = smtp_server.port, str(scenario.run_id)
    _raw_email(db, "billing2@client2.example", "noreply@client2.example")

    held = sealbill(db, port, "run", "plan", run, *ORG)
    assert held.returncode == 3, held.stdout + held.stderr
    assert "HOLD" in held.stdout and "run approve" in held.stdout
    shown = json.loads(sealbill(db, port, "run", "plan", run, *ORG, "--json").stdout)
    holding = [f for f in shown["report"]["findings"] if f["holds"]]
    assert holding and all(f["why_it_matters"] and f["what_to_do"] for f in holding)
    status = sealbill(db, port, "run", "status", run, *ORG)
    assert status.returncode == 3 and "what to do" in status.stdout
    approved = sealbill(db, port, "run", "approve", run, *ORG, "--key", reviewer,
                        "--reason", "looked at it")
    assert approved.returncode == 0, approved.stderr

    halted = sealbill(db, port, "run", "send", run, *ORG)
    assert halted.returncode == 4, halted.stdout + halted.stderr
    assert "SET ASIDE F-000002 (account A0002) by guard" in halted.stdout
    assert "[address_policy]" in halted.stdout and "what to do" in halted.stdout
    counted = sealbill(db, port, "run", "status", run, *ORG, "--json")
    payload = json.loads(counted.stdout)
    assert counted.returncode == 4 and payload["exit_code"] == 4
    assert payload["outbox"]["set_aside"] == 1 and payload["status"] == "halted"
    assert set(payload["outbox"]) >= {"queued", "sent", "set_aside", "failed_permanent"}
    assert "noreply@client2.example" not in smtp_server.all_recipients()
    [aside_item] = payload["set_aside"]
    assert aside_item["by"] == "guard" and "run set-aside" in aside_item["what_to_do"]
    assert any(v["rule"] == "address_policy" for v in aside_item["violations"])

    aside = sealbill(db, port, "run", "set-aside", run, *ORG, "--invoice", "F-000002",
                     "--reason", "placeholder address", "--by", "ops")
    assert aside.returncode == 0 and "sends the rest" in aside.stdout
    rest = sealbill(db, port, "run", "send", run, *ORG, "--json")
    assert rest.returncode == 4, rest.stdout + rest.stderr  # the rest went; one set aside
    assert json.loads(rest.stdout)["outbox"]["sent"] == 2, rest.stdout

    _raw_email(db, "noreply@client2.example", "billing2@client2.example")
    retried = sealbill(db, port, "run", "retry", run, *ORG, "--invoice", "F-000002",
                       "--reason", "address fixed")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    replanned = sealbill(db, port, "run", "plan", run, *ORG, "--replan")
    assert replanned.returncode == 0, replanned.stdout
    done = sealbill(db, port, "run", "send", run, *ORG, "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["outbox"]["sent"] == 3
    assert sealbill(db, port, "run", "status", run, *ORG).returncode == 0


def test_the_exit_codes_are_documented_in_help() -> None:
    shown = sealbill("sqlite://", 0, "run", "send", "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    for code in ("3 the plan is held", "4 the guard halted", "5 messages are left"):
        assert code in text
