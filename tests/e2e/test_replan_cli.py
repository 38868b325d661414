"""``sealbill run plan RUN --replan`` from the command line, after part of the run was sent."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.plan import plan_summary
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links
from tests.e2e.test_delivery_cli import sealbill
from tests.support.scenario import build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture


def test_replan_readdresses_what_was_not_sent_and_holds_when_the_policy_says(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=3, files_dir=tmp_path / "files")
    org, run, port = scenario.org_id, str(scenario.run_id), smtp_server.port
    planned = sealbill(db, port, "run", "plan", run, "--org", "acme-cloud", "--json")
    assert planned.returncode == 0, planned.stderr
    before = {e["account"]: e for e in json.loads(planned.stdout)["envelopes"]}
    [canary] = [ref for ref, e in before.items() if e["canary"]]
    moved = next(ref for ref in sorted(before) if ref != canary)
    i = int(moved[1:])

    # The canary leaves, then the kill switch stops the rest; a contact is replaced.
    report = send_run(engine, org, scenario.run_id,
                      transport=SmtpSender(SmtpConfig(port=port, timeout=5)), signer=None,
                      options=SendOptions(backoff_seconds=0.05),
                      on_progress=lambda _: control.pause(engine, org, actor="ops",
                                                          reason="contact change"))
    assert report.stopped == "paused" and len(smtp_server.accepted) == 1
    with engine.begin() as conn:
        old = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.account_id == scenario.account_ids[moved])).scalar_one()
        parties.set_link_status(conn, org, old, "revoked", actor="ops", reason="left")
        new = parties.add_contact(conn, org, f"accounts{i}@client{i}.example", actor="ops")
        link = parties.link_contact(conn, org, new, scenario.account_ids[moved], "billing",
                                    actor="ops")
        parties.set_link_status(conn, org, link, "verified", actor="ops", method="operator",
                                reason="customer asked")
    engine.dispose()

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"first_cycle": "hold"}))
    held = sealbill(db, port, "run", "plan", run, "--org", "acme-cloud", "--replan",
                    "--policy", str(policy), "--json")
    assert held.returncode == 3, held.stdout + held.stderr
    assert json.loads(held.stdout)["ok"] is False and json.loads(held.stdout)["verdict"] == "hold"
    replanned = sealbill(db, port, "run", "plan", run, "--org", "acme-cloud", "--replan",
                         "--json")
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    after = {e["account"]: e for e in json.loads(replanned.stdout)["envelopes"]}
    assert after[canary]["status"] == "sent"
    assert after[canary]["message_id"] == before[canary]["message_id"]
    assert after[moved]["recipients"] == [f"accounts{i}@client{i}.example"]
    assert {after[ref]["status"] for ref in after if ref != canary} == {"queued"}

    assert sealbill(db, port, "resume", "--org", "acme-cloud", "--reason", "go").returncode == 0
    sent = sealbill(db, port, "run", "send", run, "--org", "acme-cloud", "--json")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert {k: v for k, v in json.loads(sent.stdout)["outbox"].items() if v} == {"sent": 3}
    ids = [str(m.message_id) for m in smtp_server.received]
    assert sorted(ids) == sorted(e["message_id"] for e in after.values())  # each once
    assert f"billing{i}@client{i}.example" not in smtp_server.all_recipients()
    [moved_message] = [m for m in smtp_server.received
                       if m.message_id == after[moved]["message_id"]]
    assert moved_message.rcpt_tos[0] == f"accounts{i}@client{i}.example"
    verified = sealbill(db, port, "ledger", "verify", "--org", "acme-cloud", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["rows"] == 3
    engine = create_engine(db)
    assert plan_summary(engine, org, scenario.run_id)["proceed"]
    engine.dispose()
