"""A running sealbill web site for browser tests: two billing cycles, three operators, a held
run, a ledger, a real SMTP sink and uvicorn on loopback.

Built only through production code: the scenario of ``tests/support/scenario.py``, operators
and keys of ``sealbill.app.operators``, contact changes of ``sealbill.app.contacts``, runs of
``sealbill.app.runs`` (so the second run's starter is the operator ``alice``), the sender of
``pipeline/delivery/send.py`` for the first cycle.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.policy import default
from pathlib import Path

import pyotp
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from sealbill.app import contacts, ids, misdelivery, operators, runs, sessions
from sealbill.app.context import Actor, local_actor
from sealbill.mail.config import SmtpConfig
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.pipeline.delivery.send import SendOptions, send_run
from sealbill.pipeline.incident.actions import Scope, open_incident
from sealbill.store.db import create_engine
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links, subscriptions
from sealbill.store.schema import contacts as contacts_table
from sealbill.web import WebConfig, create_web_app
from tests.support.scenario import (
    Scenario,
    account_records,
    build_scenario,
    seed_organization,
)
from tests.support.smtp import SmtpCapture

PASSWORD = "correct horse battery staple"
SECRET = b"web-tests-secret-key-0123456789abcdef"
FAST = SendOptions(max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.2)


@dataclass
class Operator:
    email: str
    totp: str
    role: str
    id: int

    def code(self) -> str:
        return pyotp.TOTP(self.totp).now()


@dataclass
class Site:
    url: str
    engine: Engine
    scenario: Scenario
    smtp: SmtpCapture
    operators: dict[str, Operator]
    held_run: str  # public id of the run alice started, held by the plan's policy
    first_run: str
    app: object = None  # the web application (its routes are walked by the security tests)
    other_org: dict[str, str] | None = None  # public ids of another organization's objects

    @property
    def org_id(self) -> int:
        return self.scenario.org_id

    @property
    def slug(self) -> str:
        return self.scenario.org_slug

    def actor(self, name: str) -> Actor:
        """The operator as a console session makes them act."""
        who = self.operators[name]
        return Actor(f"operator:{who.email}", who.role, self.org_id, who.id, channel="web")

    def halt_by_revoking(self, address: str) -> int:
        """The customer revokes ``address`` after the plan was approved; sending the held run
        then halts on the guard. Returns the run's row id."""
        from sealbill.app.invoices import run_row_id

        with self.engine.begin() as conn:
            link = conn.execute(sa.select(contact_links.c.id).join(
                contacts_table, contacts_table.c.id == contact_links.c.contact_id).where(
                contacts_table.c.email == address, contact_links.c.status != "revoked")
            ).scalar_one()
            parties.set_link_status(conn, self.org_id, int(link), "revoked",
                                    actor="customer", reason="left the company")
            run_id = run_row_id(conn, self.org_id, self.held_run)
        report = send_run(self.engine, self.org_id, run_id, signer=None, options=FAST,
                          transport=SmtpSender(SmtpConfig(host=self.smtp.host,
                                                          port=self.smtp.port, timeout=2.0)))
        assert report.status == "halted"
        return run_id

    def mails_to(self, address: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m.data, policy=default)  # type: ignore[misc]
                for m in self.smtp.received if address in m.rcpt_tos]

    def last_link(self, address: str, path_part: str) -> str:
        """The last link containing ``path_part`` mailed to ``address``."""
        for message in reversed(self.mails_to(address)):
            body = message.get_body(("plain",))
            assert body is not None
            found = re.findall(r"https?://\S+", body.get_content())
            links = [link for link in found if path_part in link]
            if links:
                return links[0]
        raise AssertionError(f"no {path_part} link mailed to {address}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _operator(engine: Engine, org_id: int, name: str, role: str) -> Operator:
    address = f"{name}@acme-cloud.example"
    made = operators.create_operator(engine, local_actor(), address, name.title(), PASSWORD)
    sessions.grant(engine, local_actor(), org_id, address, role)
    who = operators.login(engine, address, PASSWORD, pyotp.TOTP(made["totp_secret"]).now())
    return Operator(address, made["totp_secret"], role, who["operator_id"])


def build_site(template: Path, tmp: Path, smtp: SmtpCapture) -> tuple[Site, uvicorn.Server]:
    """The site; invoice mails carry their "not for me" link to it (rendered with
    ``SEALBILL_PUBLIC_URL`` and ``SEALBILL_SECRET_KEY`` set, as in production)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("SEALBILL_PUBLIC_URL", "SEALBILL_SECRET_KEY")}
    os.environ.update(SEALBILL_PUBLIC_URL=url, SEALBILL_SECRET_KEY=SECRET.decode())
    try:
        return _build(template, tmp, smtp, port, url)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build(template: Path, tmp: Path, smtp: SmtpCapture, port: int, url: str
           ) -> tuple[Site, uvicorn.Server]:
    db = tmp / "web.sqlite"
    shutil.copyfile(template, db)
    engine = create_engine(f"sqlite:///{db}")
    scenario = build_scenario(engine, accounts=3, files_dir=tmp / "files")
    org = scenario.org_id
    team = {name: _operator(engine, org, name, role) for name, role in
            (("alice", "admin"), ("bob", "approver"), ("carol", "read-only"))}
    alice = Actor(f"operator:{team['alice'].email}", "admin", org, team["alice"].id,
                  channel="web")

    def transport() -> SmtpSender:
        return SmtpSender(SmtpConfig(host=smtp.host, port=smtp.port, timeout=2.0))

    # Cycle 1 (first cycle: proceeds) is sent, so the ledger has rows.
    plan_run(engine, org, scenario.run_id, actor="test-runner")
    send_run(engine, org, scenario.run_id, transport=transport(), signer=None, options=FAST)
    # Each account gets an outsourced accounts-payable address, vouched for by alice: three
    # recipient domains change, which the default policy holds (more than two).
    for i in (1, 2, 3):
        contacts.add(engine, alice, org, f"A000{i}",
                     {"email": f"ap{i}@outsourced-ap.fr", "role": "billing"})
        contacts.confirm_by_operator(engine, alice, org, f"ap{i}@outsourced-ap.fr",
                                     f"A000{i}", "customer asked by phone")
    second = runs.start(engine, alice, org, "2026-11")["run_id"]
    runs.finalize(engine, alice, org, second)
    from sealbill.app.invoices import run_row_id

    with engine.begin() as conn:
        second_id = run_row_id(conn, org, second)
        first = runs.ids.encode(conn, org, "run", scenario.run_id)
    render_run(engine, org, second_id, tmp / "files" / "documents", workers=1)
    planned = runs.plan(engine, alice, org, second)
    assert planned["verdict"] == "hold", planned["report"]

    other = _other_organization(engine, tmp)
    app = create_web_app(engine, WebConfig(public_url=url, secret_key=SECRET,
                                           transport=transport, secure_cookies=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return Site(url, engine, scenario, smtp, team, second, first, app, other), server


def _other_organization(engine: Engine, tmp: Path) -> dict[str, str]:
    """A second organization (its account, contact, subscription, run and incident), whose
    objects no operator of the first may reach: their public ids, by route parameter."""
    records = account_records(1)
    records[0].update(reference="Z0001", name="Other Org Client")
    records[0]["contacts"][0]["email"] = "billing@client99.example"
    org, account_ids = seed_organization(engine, files_dir=tmp / "other", slug="other-org",
                                         records=records)
    run = bill_period(engine, org, "2026-10", actor="test-runner").run_id
    assert run is not None
    [(invoice, _)] = finalize_run(engine, org, run)
    report = misdelivery.report(engine, org, misdelivery.signed_token(
        engine, org, invoice, SECRET), SECRET, "not mine either")
    incident = open_incident(engine, org, title="other organization's incident",
                             aware_at=datetime.now(UTC), scope=Scope(), actor="test")
    with engine.begin() as conn:
        account_id = next(iter(account_ids.values()))
        contact = conn.execute(sa.select(contact_links.c.contact_id).where(
            contact_links.c.account_id == account_id)).scalars().first()
        sub = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.organization_id == org)).scalars().first()
        return {"ref": str(parties.account(conn, org, account_id)["public_id"]),
                "contact_ref": ids.encode(conn, org, "contact", int(contact)),
                "sub_ref": ids.encode(conn, org, "subscription", int(sub)),
                "run_ref": ids.encode(conn, org, "run", int(run)),
                "invoice_ref": ids.encode(conn, org, "invoice", int(invoice)),
                "incident_id": str(incident), "report_id": str(report)}
