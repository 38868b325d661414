"""Delivery from the command line: plan, send, status, pause/resume, ledger verify, smtp-sink."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from sealbill.mail.sink import free_port, read_maildir
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import delivery_ledger
from tests.support.scenario import Scenario, build_scenario


def sealbill(db: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALBILL_SMTP_PORT": str(port), "SEALBILL_SMTP_TIMEOUT": "5",
           "SEALBILL_DKIM": "off"}
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def _wait_for_port(port: int, seconds: float = 30.0) -> None:
    """The sink is a fresh interpreter: wait until it listens rather than guess how long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"smtp-sink did not listen on port {port} within {seconds} s")


@contextmanager
def smtp_sink(maildir: Path) -> Iterator[int]:
    """``sealbill smtp-sink`` writing into ``maildir``, listening: its port."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "sealbill", "smtp-sink", "--maildir",
                             str(maildir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port)
        yield port
    finally:
        sink.terminate()
        sink.wait(10)


def rendered_database(tmp_path: Path, accounts: int) -> tuple[str, Scenario]:
    """A migrated SQLite file with a billed, finalized, rendered first run: (URL, scenario)."""
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=accounts, files_dir=tmp_path / "files")
    engine.dispose()
    return db, scenario


def test_plan_send_status_and_ledger_through_the_cli_into_a_maildir(tmp_path: Path) -> None:
    db, scenario = rendered_database(tmp_path, 3)
    maildir = tmp_path / "maildir"
    with smtp_sink(maildir) as port:
        run = str(scenario.run_id)
        planned = sealbill(db, port, "run", "plan", run, "--org", "acme-cloud", "--json")
        assert planned.returncode == 0, planned.stderr
        assert json.loads(planned.stdout)["verdict"] == "proceed"
        paused = sealbill(db, port, "pause", "--org", "acme-cloud", "--reason", "drill")
        assert paused.returncode == 0, paused.stderr
        stopped = sealbill(db, port, "run", "send", run, "--org", "acme-cloud", "--json")
        assert stopped.returncode == 5 and json.loads(stopped.stdout)["stopped"] == "paused"
        resumed = sealbill(db, port, "resume", "--org", "acme-cloud", "--reason", "go")
        assert resumed.returncode == 0, resumed.stderr
        sent = sealbill(db, port, "run", "send", run, "--org", "acme-cloud", "--json")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert {k: v for k, v in json.loads(sent.stdout)["outbox"].items() if v} == {"sent": 3}
        status = sealbill(db, port, "run", "status", run, "--org", "acme-cloud", "--json")
        assert json.loads(status.stdout)["status"] == "sent"
        verified = sealbill(db, port, "ledger", "verify", "--org", "acme-cloud", "--json")
        assert verified.returncode == 0 and json.loads(verified.stdout)["rows"] == 3
    messages = read_maildir(maildir)
    assert len(messages) == 3
    for envelope, raw in messages:
        to = envelope["to"].split(", ")[0]
        assert f"To: {to}".encode() in raw  # what SMTP was told is what the message says
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.update(delivery_ledger).where(delivery_ledger.c.seq == 1)
                     .values(invoice_number="F-999999"))
    engine.dispose()
    broken = sealbill(db, port, "ledger", "verify", "--org", "acme-cloud", "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["problems"][0]["problem"] == "edited"


def test_contacts_verify_mails_a_bilingual_code_that_confirms_once(tmp_path: Path) -> None:
    """A second request supersedes the first code; the link appears only with --link-base."""
    from email import message_from_bytes
    from email.policy import default

    from sealbill.store.parties import records as parties

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(db)
    upgrade(engine)
    scenario = build_scenario(engine, accounts=2, files_dir=tmp_path / "files", render=False)
    with engine.begin() as conn:
        cid = parties.add_contact(conn, scenario.org_id, "new@client1.example", actor="ops")
        parties.link_contact(conn, scenario.org_id, cid, scenario.account_ids["A0001"],
                             "billing", actor="ops")
    engine.dispose()
    port = free_port()
    maildir = tmp_path / "maildir"
    files = ["--files-dir", str(tmp_path / "files")]
    sink = subprocess.Popen([sys.executable, "-m", "sealbill", "smtp-sink", "--maildir",
                             str(maildir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port)
        mailed = sealbill(db, port, "contacts", "verify", "new@client1.example", "--account",
                          "A0001", "--org", "acme-cloud", *files, "--json")
        assert mailed.returncode == 0, mailed.stderr
        assert json.loads(mailed.stdout)["sent_to"] == "new@client1.example"
        linked = sealbill(db, port, "contacts", "verify", "new@client1.example", "--account",
                          "A0001", "--org", "acme-cloud", *files, "--json",
                          "--link-base", "https://billing.acme-cloud.example/verify")
        assert linked.returncode == 0, linked.stderr
    finally:
        sink.terminate()
        sink.wait(10)
    (envelope, first), (_, second) = read_maildir(maildir)
    assert envelope["to"] == "new@client1.example"
    text = message_from_bytes(first, policy=default).get_body(
        ("plain",)).get_content()  # type: ignore[union-attr]
    assert "Pour recevoir" in text and "To receive" in text and "http" not in text
    first_code = text.split("Code : ", 1)[1].split()[0]
    link = message_from_bytes(second, policy=default).get_body(
        ("plain",)).get_content()  # type: ignore[union-attr]
    code = link.split("Code : ", 1)[1].split()[0]
    assert f"https://billing.acme-cloud.example/verify?code={code}" in link
    superseded = sealbill(db, port, "contacts", "confirm", "--org", "acme-cloud", "--code",
                          first_code, *files, "--json")
    assert superseded.returncode == 1 and "superseded" in superseded.stdout
    confirmed = sealbill(db, port, "contacts", "confirm", "--org", "acme-cloud", "--code", code,
                         *files, "--json")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    from sealbill.app import ids

    with engine.begin() as conn:  # the contact's public id, as the API names it
        assert ids.decode(conn, scenario.org_id, "contact",
                          json.loads(confirmed.stdout)["contact_id"]) == cid
    again = sealbill(db, port, "contacts", "confirm", "--org", "acme-cloud", "--code", code,
                     *files, "--json")
    assert again.returncode == 1 and "already used" in again.stdout + again.stderr
