"""A rendered billing cycle, a real SMTP server on loopback, and what "a wrong recipient" means.

The ground truth for "who may receive an invoice" is taken from the scenario as it was built
(reference A000i <-> billing{i}@client{i}.example, plus what a test adds explicitly), never from
the tables the pipeline reads, so a fault that corrupts those tables cannot also corrupt the
check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.config import SmtpConfig
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key
from sealbill.mail.readback import parse_message
from sealbill.mail.smtp import SmtpSender
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.delivery.compose import extract_facturx_xml
from sealbill.pipeline.delivery.plan import PlanResult, approve_run, plan_run
from sealbill.pipeline.delivery.send import SendOptions, SendReport, send_run
from sealbill.store.delivery import ledger
from sealbill.store.schema import alerts, billing_runs, invoices, organizations, outbox
from tests.support.scenario import Scenario, build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture

FAST = SendOptions(max_attempts=4, backoff_seconds=0.05, backoff_max_seconds=0.2)


@pytest.fixture(scope="session")
def dkim_signer(tmp_path_factory: pytest.TempPathFactory) -> DkimSigner:
    pem = generate_key(tmp_path_factory.mktemp("dkim") / "dkim.pem")
    return DkimSigner(DkimKey("test", "acme-cloud.example", pem))


def invoice_number_in(data: bytes) -> str | None:
    """The invoice number inside the Factur-X XML of the message's PDF, if any."""
    import xml.etree.ElementTree as ET

    for part in parse_message(data).parts:
        if part.content_type == "application/pdf":
            root = ET.fromstring(extract_facturx_xml(part.payload))
            return root.findtext(
                "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}ExchangedDocument/"
                "{urn:un:unece:uncefact:data:standard:"
                "ReusableAggregateBusinessInformationEntity:100}ID")
    return None


@dataclass
class World:
    engine: Engine
    scenario: Scenario
    smtp: SmtpCapture
    signer: DkimSigner
    # account reference -> addresses entitled to its invoices (ground truth, see module doc)
    entitled: dict[str, set[str]] = field(default_factory=dict)

    @property
    def org_id(self) -> int:
        return self.scenario.org_id

    @property
    def run_id(self) -> int:
        return self.scenario.run_id

    def transport(self) -> SmtpSender:
        return SmtpSender(SmtpConfig(host=self.smtp.host, port=self.smtp.port, timeout=1.0))

    def plan(self, run_id: int | None = None, **kwargs: object) -> PlanResult:
        return plan_run(self.engine, self.org_id, run_id or self.run_id, actor="planner",
                        **kwargs)  # type: ignore[arg-type]

    def approve(self, run_id: int | None = None) -> None:
        approve_run(self.engine, self.org_id, run_id or self.run_id, actor="reviewer",
                    reason="test approval")

    def send(self, run_id: int | None = None, options: SendOptions = FAST) -> SendReport:
        return send_run(self.engine, self.org_id, run_id or self.run_id,
                        transport=self.transport(), signer=self.signer, options=options)

    def archive(self) -> str | None:
        with self.engine.begin() as conn:
            return conn.execute(sa.select(organizations.c.archive_email).where(
                organizations.c.id == self.org_id)).scalar()

    def run_status(self, run_id: int | None = None) -> str:
        with self.engine.begin() as conn:
            return str(conn.execute(sa.select(billing_runs.c.status).where(
                billing_runs.c.id == (run_id or self.run_id))).scalar())

    def alert_causes(self) -> list[str]:
        with self.engine.begin() as conn:
            return [str(c) for c in conn.execute(sa.select(alerts.c.cause).where(
                alerts.c.organization_id == self.org_id)).scalars()]

    def alert_text(self) -> str:
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(alerts.c.cause, alerts.c.message, alerts.c.evidence)
                                .where(alerts.c.organization_id == self.org_id)).all()
        return "\n".join(f"{c} {m} {e}" for c, m, e in rows)

    def wrong_deliveries(self) -> list[str]:
        """Every (message, address) the SMTP server received that was not entitled to it."""
        archive = (self.archive() or "").lower()
        with self.engine.begin() as conn:
            owner = {str(n): str(r) for n, r in conn.execute(
                sa.select(invoices.c.number, invoices.c.account_reference).where(
                    invoices.c.organization_id == self.org_id, invoices.c.number.is_not(None)))}
            ours = set(conn.execute(sa.select(outbox.c.message_id).where(
                outbox.c.organization_id == self.org_id)).scalars())
            known = set(conn.execute(sa.select(outbox.c.message_id)).scalars())
        wrong = [f"unknown message {m.message_id}" for m in self.smtp.received
                 if m.message_id not in known]
        for message in self.smtp.received:
            if message.message_id not in ours:
                continue  # another organization's message (checked by that world)
            number = invoice_number_in(message.data)
            allowed = self.entitled.get(owner.get(number or "", ""), set())
            for rcpt in message.rcpt_tos:
                if rcpt.lower() != archive and rcpt.lower() not in allowed:
                    wrong.append(f"{number} -> {rcpt}")
        return wrong

    def ledger_ok(self) -> bool:
        with self.engine.begin() as conn:
            return ledger.verify(conn, self.org_id).ok


def make_world(engine: Engine, tmp_path: Path, smtp: SmtpCapture, signer: DkimSigner, *,
               accounts: int = 4, slug: str = "acme-cloud") -> World:
    scenario = build_scenario(engine, accounts=accounts, files_dir=tmp_path / slug, slug=slug)
    entitled = {f"A{i:04d}": {f"billing{i}@client{i}.example"} for i in range(1, accounts + 1)}
    return World(engine, scenario, smtp, signer, entitled)


@pytest.fixture
def world(sqlite_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,  # noqa: F811
          dkim_signer: DkimSigner) -> Iterator[World]:
    yield make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer)


@pytest.fixture
def pg_world(pg_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,  # noqa: F811
             dkim_signer: DkimSigner) -> Iterator[World]:
    yield make_world(pg_engine, tmp_path, smtp_server, dkim_signer)


def second_cycle(world: World, period: str = "2026-11") -> int:
    """Bill, finalize and render the next period of the world's organization: its run id."""
    result = bill_period(world.engine, world.org_id, period, actor="test-runner")
    assert result.run_id is not None
    finalize_run(world.engine, world.org_id, result.run_id)
    render_run(world.engine, world.org_id, result.run_id,
               world.scenario.files_dir / "documents", workers=1)
    return result.run_id
