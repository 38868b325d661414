"""The seed's incident, reproduced end to end, then handled with `sealbill incident` as an
operator would: from the ledger and the contact history only.

The seed: after "an operational change" to a billing system, invoices went to other customers.
Here the change is a data migration that rewrote billing links in place (no contact event, as
a raw SQL migration does); the guard that would stop those mails is bypassed *in this test
only* so that they really reach the SMTP server. The ground truth is what that server received
and who was entitled to what when the scenario was built, never the tables the tooling reads.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain import guard, seal_guard
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.delivery.plan import approve_run, plan_run
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.store.db import create_engine
from sealbill.store.delivery import switches
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links, invoices
from tests.integration.delivery.conftest import invoice_number_in
from tests.integration.incident.expected import LABELS
from tests.integration.incident.world import at, swapped_world
from tests.support.scenario import account_records, build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

SLUG = "acme-cloud"
ACCOUNTANT = "compta@cabinet-expert.example"
COUNTRIES = {1: "FR", 2: "DE", 3: "BE", 4: "IT", 5: "FR", 6: "ES"}


def sealbill(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db],
                          capture_output=True, text=True, timeout=120)


def ok_json(db: str, *args: str) -> Any:
    result = sealbill(db, *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def billing_email(i: int) -> str:
    return f"billing{i}@client{i}.example"


def customers() -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Six customers in five member states; an accountant legitimately verified on two."""
    records = account_records(6)
    entitled = {f"A{i:04d}": {billing_email(i)} for i in range(1, 7)}
    for i, record in enumerate(records, start=1):
        record["country"] = COUNTRIES[i]
        if i in (5, 6):
            record["contacts"].append({"email": ACCOUNTANT, "role": "billing",
                                       "verified": {"by": "test", "reason": "mandate on file"}})
            entitled[record["reference"]].add(ACCOUNTANT)
    return records, entitled


def bad_migration(engine: Engine, org_id: int, accounts: dict[str, int],
                  contacts: dict[str, int]) -> None:
    """Rewrite billing links in place: A0001<->A0002 swapped, A0003 pointed at A0004's contact."""
    moves = {"A0001": billing_email(2), "A0002": billing_email(1), "A0003": billing_email(4)}
    with engine.begin() as conn:
        for reference, email in moves.items():
            conn.execute(sa.update(contact_links).where(
                contact_links.c.organization_id == org_id,
                contact_links.c.account_id == accounts[reference],
                contact_links.c.contact_id != contacts[ACCOUNTANT],
                contact_links.c.role == "billing").values(contact_id=contacts[email]))


def test_the_seed_incident_is_found_exactly_and_handled_from_the_ledger(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpCapture,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(sqlite_url)
    records, entitled = customers()
    scenario = build_scenario(engine, accounts=6, files_dir=tmp_path / "files", slug=SLUG,
                              records=records)
    bad_migration(engine, scenario.org_id, scenario.account_ids, scenario.contact_ids)
    if plan_run(engine, scenario.org_id, scenario.run_id, actor="planner").verdict == "hold":
        approve_run(engine, scenario.org_id, scenario.run_id, actor="reviewer",
                    reason="reproducing the seed incident")
    # the bypass, test only: the guard's rules and its seal rule (which refuses the rewritten
    # links, their seals no longer matching) both answer "send"
    monkeypatch.setattr(guard, "verdict", lambda *args, **kwargs: [])
    monkeypatch.setattr(seal_guard, "verdict", lambda *args, **kwargs: [])
    report = send_run(engine, scenario.org_id, scenario.run_id,
                      transport=SmtpSender(SmtpConfig(host=smtp_server.host,
                                                      port=smtp_server.port, timeout=2.0)),
                      signer=None, options=SendOptions(backoff_seconds=0.05))
    assert report.status == "sent", report

    # Ground truth: what the SMTP server received, judged against the scenario as built.
    with engine.connect() as conn:
        owner = dict(conn.execute(sa.select(invoices.c.number, invoices.c.account_reference)
                                  .where(invoices.c.organization_id == scenario.org_id)).all())
        old_ids = {ref: parties.account(conn, scenario.org_id, account_id)["public_id"]
                   for ref, account_id in scenario.account_ids.items()}
    archive = "archive@acme-cloud.example"
    wrong: set[tuple[str, str]] = set()
    wrong_accounts: set[str] = set()
    for message in smtp_server.received:
        reference = owner[invoice_number_in(message.data)]
        for rcpt in message.rcpt_tos:
            if rcpt.lower() != archive and rcpt.lower() not in entitled[reference]:
                wrong.add((str(message.message_id), rcpt.lower()))
                wrong_accounts.add(reference)
    assert wrong_accounts == {"A0001", "A0002", "A0003"}  # the bypass really leaked
    assert len(smtp_server.received) == 6

    db = sqlite_url
    aware = datetime.now(UTC).isoformat()
    opened = ok_json(db, "incident", "open", "--org", SLUG, "--title",
                     "Customers report receiving other customers' invoices", "--aware-at", aware,
                     "--run", str(scenario.run_id), "--pause-sending")
    incident = str(opened["incident_id"])
    with engine.connect() as conn:
        assert switches.is_paused(conn, scenario.org_id)

    radius = ok_json(db, "incident", "radius", incident, "--org", SLUG)
    view = radius["as_corrected"]
    assert {(e["message_id"], e["email"].lower()) for e in view["exposures"]} == wrong
    assert {s["reference"] for s in view["subjects"]} == wrong_accounts
    assert {r["email"] for r in view["unintended_recipients"]} == {
        billing_email(1), billing_email(2), billing_email(4)}
    assert view["member_states"] == ["BE", "DE", "FR"]
    assert view["counts"] == {"subjects": 3, "consumers": 0, "records": 3, "disclosures": 3,
                              "unintended_recipients": 3}
    assert radius["messages_in_scope"] == 6 and radius["ledger"]["ok"]
    assert radius["as_recorded"]["exposures"] == view["exposures"]  # history alone finds it
    legal = list(csv.DictReader(io.StringIO(
        sealbill(db, "incident", "radius", incident, "--org", SLUG, "--csv").stdout)))
    assert {(r["message_id"], r["recipient_email"]) for r in legal} == wrong
    assert {r["entitled_as_corrected"] for r in legal} == {"no"}

    severity = ok_json(db, "incident", "assess", incident, "--org", SLUG, "--set",
                       "cb_confidentiality=0.5", "--justify",
                       "cb_confidentiality=recipients may have forwarded the mails")
    assert (severity["inputs"]["dpc"], severity["level"]) == ("3", "high")
    ok_json(db, "incident", "decide", incident, "--org", SLUG, "--notify", "--reason",
            "invoices with amounts and addresses reached other customers",
            "--communication", "planned")
    ok_json(db, "incident", "update", incident, "--org", SLUG,
            "--cause", "a data migration rewrote billing contact links between accounts",
            "--detection", "customers reported receiving other companies' invoices",
            "--measure-proposed", "re-verify every billing contact before the next run")
    status = ok_json(db, "incident", "status", incident, "--org", SLUG)
    assert status["missing"] == [] and not status["clock"]["overdue"]

    out = tmp_path / "drafts"
    drafts = ok_json(db, "incident", "drafts", incident, "--org", SLUG, "--out", str(out))
    assert drafts["missing_fields"] == []
    for lang, labels in LABELS.items():
        text = (out / lang / "art33-notification.md").read_text()
        assert [k for k, label in labels.items() if label not in text] == []
        assert "MISSING" not in text and "MANQUANT" not in text
        assert (out / lang / "art33-notification.pdf").read_bytes().startswith(b"%PDF")
    manifest = json.loads((out / "manifest.json").read_text())
    letters = {f["addressee"] for f in manifest["files"] if f["kind"] == "art34"}
    requests = {f["addressee"] for f in manifest["files"] if f["kind"] == "deletion"}
    assert letters == {f"account {ref}" for ref in wrong_accounts}
    assert requests == {email for _, email in wrong}

    rotated = ok_json(db, "incident", "rotate", incident, "--org", SLUG)
    assert {a["reference"] for a in rotated["accounts"]} == wrong_accounts
    with engine.connect() as conn:
        for reference, public_id in old_ids.items():
            lookup = parties.resolve_public_id(conn, scenario.org_id, public_id)
            if reference in wrong_accounts:
                assert lookup.gone and lookup.account_id is None
            else:
                assert lookup.account_id == scenario.account_ids[reference]
    register = ok_json(db, "incident", "register", "--org", SLUG)["incidents"]
    assert [(e["id"], e["decision"]["notify"], e["effects"]["subjects"]) for e in register] == [
        (int(incident), True, 3)]
    assert any("rotated" in m for m in register[0]["remedial_action"]["taken"])


@pytest.fixture
def small_world_db(sqlite_url: str) -> str:
    swapped_world(create_engine(sqlite_url))
    return sqlite_url


def test_a_time_without_offset_is_bad_usage(small_world_db: str) -> None:
    result = sealbill(small_world_db, "incident", "open", "--org", "acme", "--title", "x",
                      "--aware-at", "2026-05-15T09:00:00")

    assert result.returncode == 2
    assert "time zone" in result.stderr


def test_an_unknown_incident_is_a_failure(small_world_db: str) -> None:
    result = sealbill(small_world_db, "incident", "status", "999", "--org", "acme", "--json")

    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "incident 999 not found"


def test_a_window_without_leak_says_so(small_world_db: str) -> None:
    window = (at(8).isoformat(), at(12).isoformat())
    opened = ok_json(small_world_db, "incident", "open", "--org", "acme", "--title", "alarm",
                     "--aware-at", at(0).isoformat(), "--window", *window,
                     "--description", "an alarm from the mail relay")
    incident = str(opened["incident_id"])
    [entry] = ok_json(small_world_db, "incident", "register", "--org", "acme")["incidents"]
    assert entry["facts"]["description"] == "an alarm from the mail relay"

    table = sealbill(small_world_db, "incident", "radius", incident, "--org", "acme")
    status = sealbill(small_world_db, "incident", "status", incident, "--org", "acme")

    assert table.returncode == 0 and status.returncode == 0
    assert "No unintended recipient" in " ".join(table.stdout.split())
    flat = " ".join(status.stdout.split())
    assert "no notification indicated" in flat and "--no-notify" in flat
    assert "--delay-reason" not in flat


def test_a_late_status_asks_for_the_reasons_for_delay(small_world_db: str) -> None:
    opened = ok_json(small_world_db, "incident", "open", "--org", "acme", "--title", "swap",
                     "--aware-at", at(0).isoformat())
    incident = str(opened["incident_id"])

    status = sealbill(small_world_db, "incident", "status", incident, "--org", "acme")
    ok_json(small_world_db, "incident", "update", incident, "--org", "acme", "--delay-reason",
            "the reach of the migration was known only after replaying the ledger")
    after = ok_json(small_world_db, "incident", "status", incident, "--org", "acme")

    flat = " ".join(status.stdout.split())
    assert "72-hour deadline passed" in flat
    assert f"sealbill incident update {incident} --delay-reason TEXT" in flat
    assert after["clock"]["overdue"] and not after["clock"]["needs_delay_reason"]
    assert "delay_reason" not in [m["field"] for m in after["missing"]]


def test_incident_commands_are_audited_under_the_public_id_and_queue_the_webhook(
        small_world_db: str) -> None:
    """Through the application layer, as over the API: ``incident.opened`` queued, every act
    in the audit log under the incident's public id, a read-only key refused."""
    from sealbill.app import ids, operators, webhooks
    from sealbill.app.context import local_actor
    from sealbill.store.schema import audit_log, webhook_messages

    engine = create_engine(small_world_db)
    with engine.begin() as conn:
        org_id = int(parties.organization_by_slug(conn, "acme")["id"])
    root = local_actor()
    webhooks.add_endpoint(engine, root, org_id, "https://93.184.216.34/h", ["incident.opened"])
    operators.create_operator(engine, root, "reader@ops.example", "read-only",
                              "correct horse battery")
    key = operators.create_key(engine, root, org_id, "reader@ops.example", "read-only")["key"]

    opened = ok_json(small_world_db, "incident", "open", "--org", "acme", "--title", "swap",
                     "--aware-at", at(0).isoformat())
    incident = str(opened["incident_id"])
    ok_json(small_world_db, "incident", "update", incident, "--org", "acme", "--cause",
            "a bad migration")
    refused = sealbill(small_world_db, "incident", "close", incident, "--org", "acme",
                       "--reason", "done", "--key", key, "--json")
    assert refused.returncode == 1 and "may not" in json.loads(refused.stdout)["error"]
    ok_json(small_world_db, "incident", "close", incident, "--org", "acme", "--reason", "done")

    with engine.begin() as conn:
        public = ids.encode(conn, org_id, "incident", int(incident))
        actions = list(conn.execute(sa.select(audit_log.c.action).where(
            audit_log.c.object_kind == "incident", audit_log.c.object_id == public)
            .order_by(audit_log.c.id)).scalars())
        queued = conn.execute(sa.select(webhook_messages.c.payload)).scalars().all()
    assert actions == ["incident.open", "incident.update", "incident.close"]
    assert [p["data"]["incident_id"] for p in queued] == [public]


def test_correct_link_and_rotate_are_audited_under_the_public_id_and_refused_read_only(
        small_world_db: str) -> None:
    """``correct-link`` and ``rotate`` through the application layer: the correction moves
    the corrected radius, the rotation retires the affected accounts' ids, both land in the
    audit log under the incident's public id; a read-only key changes nothing."""
    from sealbill.app import ids, operators
    from sealbill.app.context import local_actor
    from sealbill.store.schema import audit_log, link_corrections

    engine = create_engine(small_world_db)
    with engine.begin() as conn:
        org_id = int(parties.organization_by_slug(conn, "acme")["id"])
    root = local_actor()
    operators.create_operator(engine, root, "reader@ops.example", "read-only",
                              "correct horse battery")
    key = operators.create_key(engine, root, org_id, "reader@ops.example", "read-only")["key"]
    db = small_world_db
    incident = str(ok_json(db, "incident", "open", "--org", "acme", "--title", "swap",
                           "--aware-at", at(60).isoformat(), "--window", at(-1).isoformat(),
                           at(30).isoformat())["incident_id"])
    correction = ("incident", "correct-link", incident, "--org", "acme", "--contact",
                  "books@accountant.test", "--account", "ACC-4", "--not-entitled",
                  "--reason", "the mandate had ended", "--from", at(-1).isoformat(),
                  "--to", at(30).isoformat())

    refused = [sealbill(db, *correction, "--key", key, "--json"),
               sealbill(db, "incident", "rotate", incident, "--org", "acme", "--key", key,
                        "--json")]
    backwards = sealbill(db, *correction[:-4], "--from", at(30).isoformat(), "--to",
                         at(-1).isoformat(), "--json")
    unknown = sealbill(db, *correction[:6], "nobody@nowhere.test", *correction[7:], "--json")
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(link_corrections)
                            ).scalar() == 0  # nothing written by the refusals
    before = ok_json(db, "incident", "radius", incident, "--org", "acme")["as_corrected"]
    corrected = sealbill(db, *correction)
    after = ok_json(db, "incident", "radius", incident, "--org", "acme")["as_corrected"]
    rotated = ok_json(db, "incident", "rotate", incident, "--org", "acme")

    assert [r.returncode for r in refused] == [1, 1]
    assert all("may not" in json.loads(r.stdout)["error"] for r in refused)
    assert backwards.returncode == 2 and "end must come after" in backwards.stdout
    assert unknown.returncode == 1 and "not found" in json.loads(unknown.stdout)["error"]
    assert corrected.returncode == 0 and "recorded" in corrected.stdout
    assert "ACC-4" not in {s["reference"] for s in before["subjects"]}
    assert "ACC-4" in {s["reference"] for s in after["subjects"]}
    assert "ACC-4" in {a["reference"] for a in rotated["accounts"]}
    with engine.begin() as conn:
        public = ids.encode(conn, org_id, "incident", int(incident))
        entries = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor).where(
            audit_log.c.object_kind == "incident", audit_log.c.object_id == public)
            .order_by(audit_log.c.id)).all()
    assert [e.action for e in entries] == ["incident.open", "incident.correct_link",
                                           "incident.rotate"]


def test_the_incident_reports_go_through_the_application_layer(small_world_db: str,
                                                               tmp_path: Path) -> None:
    """``radius|status|register`` read with the key's role checked; ``drafts`` is an act:
    refused to a read-only key (nothing written), audited for the one who may."""
    from sealbill.app import audit, operators
    from sealbill.app.context import local_actor

    opened = ok_json(small_world_db, "incident", "open", "--org", "acme", "--title", "alarm",
                     "--aware-at", at(20).isoformat())
    incident = str(opened["incident_id"])
    engine = create_engine(small_world_db)
    root = local_actor()
    with engine.begin() as conn:
        org_id = int(parties.organization_by_slug(conn, "acme")["id"])
    operators.create_operator(engine, root, "reader@acme.example", "Reader",
                              "a long enough password")
    reader = operators.create_key(engine, root, org_id, "reader@acme.example",
                                  "read-only")["key"]
    for command in (("radius", incident), ("status", incident), ("register",)):
        ok_json(small_world_db, "incident", *command, "--org", "acme", "--key", reader)
    refused = sealbill(small_world_db, "incident", "drafts", incident, "--org", "acme",
                       "--out", str(tmp_path / "refused"), "--no-pdf", "--key", reader,
                       "--json")
    assert refused.returncode == 1 and "may not act on incidents" in refused.stdout
    assert not (tmp_path / "refused").exists()
    done = ok_json(small_world_db, "incident", "drafts", incident, "--org", "acme",
                   "--out", str(tmp_path / "drafts"), "--no-pdf")
    assert done["files"] and (tmp_path / "drafts" / done["files"][0]).is_file()
    [entry] = audit.entries(engine, root, org_id, action="incident.drafts")["items"]
    assert entry["actor"].startswith("local:") and entry["after"]["detail"]["files"] == len(
        done["files"])
    engine.dispose()
