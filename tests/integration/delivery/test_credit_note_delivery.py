"""Credit notes are mailed like invoices (issue 12), against the real SMTP test server, on
SQLite and PostgreSQL: to the verified billing contacts of the corrected invoice's account,
through the same plan, guard, send and ledger, once; an invoice's mail states the amount due
after the customer's credit. Each test failed on the code before this change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree

from sealbill.documents.cii import NS
from sealbill.mail.readback import parse_message
from sealbill.pipeline.billing.finalize import issue_credit_note
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.delivery.compose import extract_facturx_xml
from sealbill.pipeline.delivery.plan import plan_summary
from sealbill.pipeline.delivery.send import SendError
from sealbill.pipeline.incident.actions import radius_in
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.incident import evidence as incident_evidence
from sealbill.store.parties import records as parties
from sealbill.store.schema import delivery_ledger, documents, invoices, outbox, subscriptions
from tests.integration.delivery.conftest import World, second_cycle
from tests.support.smtp import Received

ACCOUNTANT = "ledger@cabinet-compta.example"
WORLDS = ["world", "pg_world"]


def _world(request: pytest.FixtureRequest, which: str) -> World:
    world: World = request.getfixturevalue(which)
    return world


def _send_all(world: World, run_id: int | None = None) -> None:
    if world.plan(run_id).verdict == "hold":
        world.approve(run_id)
    report = world.send(run_id)
    assert report.status == "sent" and not report.violations, report


def _messages_of(world: World, number: str) -> list[Received]:
    return [m for m in world.smtp.accepted if _xml(m) is not None
            and _xml(m).findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=NS) == number]


def _xml(message: Received) -> Any:
    for part in parse_message(message.data).parts:
        if part.content_type == "application/pdf":
            return etree.fromstring(extract_facturx_xml(part.payload))
    return None


def _text_body(message: Received) -> str:
    [text] = [p for p in parse_message(message.data).parts if p.content_type == "text/plain"]
    return text.payload.decode()


def _cancel_now(world: World, reference: str) -> None:
    with world.engine.begin() as conn:
        sub_id = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.account_id == world.scenario.account_ids[reference])).scalar_one()
        catalog_store.cancel(conn, world.org_id, sub_id, on=date(2026, 10, 11),
                             at_period_end=False)


def _add_accountant(world: World, reference: str) -> None:
    """A second verified billing contact of the account (verified long ago)."""
    long_ago = datetime.now(UTC) - timedelta(days=60)
    with world.engine.begin() as conn:
        contact = parties.add_contact(conn, world.org_id, ACCOUNTANT, name="Cabinet",
                                      actor="ops", at=long_ago)
        link = parties.link_contact(conn, world.org_id, contact,
                                    world.scenario.account_ids[reference], "billing",
                                    actor="ops", at=long_ago)
        parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                method="email_token", at=long_ago)
    world.entitled[reference].add(ACCOUNTANT)


def _ledger_kinds(world: World) -> dict[str, set[str]]:
    with world.engine.begin() as conn:
        rows = conn.execute(sa.select(delivery_ledger.c.invoice_number,
                                      delivery_ledger.c.document_kind)).all()
    out: dict[str, set[str]] = {}
    for number, kind in rows:
        out.setdefault(str(number), set()).add(str(kind))
    return out


@pytest.mark.parametrize("which", WORLDS)
def test_a_run_that_issues_a_credit_note_mails_it_once_to_each_entitled_recipient(
        which: str, request: pytest.FixtureRequest) -> None:
    world = _world(request, which)
    _send_all(world)  # October
    _add_accountant(world, "A0001")
    _cancel_now(world, "A0001")  # November: credits exceed charges, a credit note
    run = second_cycle(world)
    with world.engine.begin() as conn:
        credit = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.run_id == run, invoices.c.kind == "credit_note")).scalar_one()
    plan = world.plan(run)
    # the plan (what `run plan` shows before anything is sent) lists it, to both contacts
    shown = {e["invoice"]: e for e in plan_summary(world.engine, world.org_id, run)["envelopes"]}
    assert sorted(shown[credit]["recipients"]) == sorted(
        [ACCOUNTANT, "billing1@client1.example"])
    assert shown[credit]["status"] == "queued"
    if plan.verdict == "hold":
        world.approve(run)
    assert world.send(run).status == "sent"
    [message] = _messages_of(world, credit)
    assert sorted(message.rcpt_tos) == sorted([ACCOUNTANT, "billing1@client1.example",
                                               world.archive()])
    subject = parse_message(message.data).subject
    assert subject.startswith(f"Avoir n° {credit} corrigeant la facture n° F-000001 — ")
    xml = _xml(message)
    assert xml.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    assert "F-000001" in _text_body(message)
    assert shown[credit]["kind"] == "credit_note"
    assert _ledger_kinds(world)[credit] == {"credit_note"}
    assert _ledger_kinds(world)["F-000001"] == {"invoice"}
    # a second send, a rerun of the period, another plan and send: nothing goes twice
    before = len(world.smtp.accepted)
    with pytest.raises(SendError):
        world.send(run)
    assert bill_period(world.engine, world.org_id, "2026-11", actor="t").drafted == 0
    world.plan(run)
    assert len(world.smtp.accepted) == before
    assert world.smtp.accepted_pairs().most_common(1)[0][1] == 1
    assert world.wrong_deliveries() == [] and world.ledger_ok()


@pytest.mark.parametrize("which", WORLDS)
def test_a_manual_credit_note_after_its_run_was_sent_is_mailed_by_the_next_run(
        which: str, request: pytest.FixtureRequest) -> None:
    world = _world(request, which)
    _send_all(world)  # October, F-000001..F-000004 sent
    credit_id, credit = issue_credit_note(world.engine, world.org_id, "F-000002",
                                          reason="geste commercial", amount_minor=500)
    with world.engine.begin() as conn:  # October's run is sent: it waits for the next run
        assert conn.execute(sa.select(invoices.c.run_id).where(
            invoices.c.id == credit_id)).scalar() is None
    preview = bill_period(world.engine, world.org_id, "2026-11", actor="t", dry_run=True)
    assert preview.credit_notes_to_deliver == [credit]
    result = bill_period(world.engine, world.org_id, "2026-11", actor="t")
    assert result.credit_notes_to_deliver == [credit] and result.drafted == 4
    run = result.run_id or 0
    from sealbill.pipeline.billing.finalize import finalize_run

    finalize_run(world.engine, world.org_id, run)
    render_run(world.engine, world.org_id, run, world.scenario.files_dir / "documents",
               workers=1)
    _send_all(world, run)
    [message] = _messages_of(world, credit)
    assert sorted(message.rcpt_tos) == sorted(["billing2@client2.example", world.archive()])
    assert parse_message(message.data).subject.startswith(
        f"Credit note {credit} correcting invoice F-000002 — ")  # A0002 reads English
    # A0002's November invoice applied that credit (6.00 incl. VAT): its mail says what is due
    with world.engine.begin() as conn:
        november = [load_invoice(conn, world.org_id, int(i)) for i in conn.execute(
            sa.select(invoices.c.id).where(invoices.c.run_id == run,
                                           invoices.c.kind == "invoice",
                                           invoices.c.account_reference == "A0002")).scalars()]
    [invoice] = november
    assert invoice.prepaid_minor == 600
    [mail] = _messages_of(world, invoice.number)
    body = _text_body(mail)
    due = f"€{invoice.amount_due_minor / 100:.2f}"
    assert f"Amount due: {due}" in body and "Credit applied: -€6.00" in body
    assert parse_message(mail.data).subject.endswith(f"— {due}")
    # a rerun of November takes nothing more and mails nothing more
    assert bill_period(world.engine, world.org_id, "2026-11",
                       actor="t").credit_notes_to_deliver == []
    assert len(_messages_of(world, credit)) == 1
    assert world.wrong_deliveries() == [] and world.ledger_ok()


@pytest.mark.parametrize("which", WORLDS)
def test_a_manual_credit_note_before_its_run_is_planned_goes_with_the_run_past_the_guard(
        which: str, request: pytest.FixtureRequest) -> None:
    """It names its corrected invoice, of the same run and account: not another's number."""
    world = _world(request, which)
    _, credit = issue_credit_note(world.engine, world.org_id, "F-000001", reason="erreur")
    render_run(world.engine, world.org_id, world.run_id,
               world.scenario.files_dir / "documents", workers=1)
    _send_all(world)
    assert len(_messages_of(world, credit)) == 1 and len(_messages_of(world, "F-000001")) == 1
    assert _ledger_kinds(world)[credit] == {"credit_note"}
    assert world.wrong_deliveries() == [] and world.ledger_ok()


@pytest.mark.parametrize("which", WORLDS)
def test_the_guard_refuses_a_credit_note_whose_attachment_is_another_buyers(
        which: str, request: pytest.FixtureRequest) -> None:
    world = _world(request, which)
    credit_id, credit = issue_credit_note(world.engine, world.org_id, "F-000001",
                                          reason="erreur")
    render_run(world.engine, world.org_id, world.run_id,
               world.scenario.files_dir / "documents", workers=1)
    with world.engine.begin() as conn:  # the credit note's PDF row now names A0002's PDF
        other = conn.execute(sa.select(documents.c.path, documents.c.sha256)
                             .join(invoices, invoices.c.id == documents.c.invoice_id)
                             .where(invoices.c.number == "F-000002",
                                    documents.c.kind == "pdf")).one()
        conn.execute(sa.update(documents).where(documents.c.invoice_id == credit_id,
                                                documents.c.kind == "pdf")
                     .values(path=other.path, sha256=other.sha256))
    if world.plan().verdict == "hold":
        world.approve()
    world.send()
    assert world.wrong_deliveries() == []
    assert "another invoice's or buyer's" in world.alert_text()
    assert not any("billing1@client1.example" in m.rcpt_tos and _xml(m) is not None
                   and _xml(m).findtext(".//rsm:ExchangedDocument/ram:ID",
                                        namespaces=NS) == "F-000002"
                   for m in world.smtp.received)
    with world.engine.begin() as conn:
        status = conn.execute(
            sa.select(outbox.c.status).where(outbox.c.message_id.like(f"%inv-{credit_id}.%"))
        ).scalar()
    assert status == "set_aside", credit


def test_the_blast_radius_counts_credit_notes(world: World) -> None:
    """An outsider on A0001 received its credit note: the radius names it as such."""
    _, credit = issue_credit_note(world.engine, world.org_id, "F-000001", reason="erreur")
    render_run(world.engine, world.org_id, world.run_id,
               world.scenario.files_dir / "documents", workers=1)
    _add_accountant(world, "A0001")
    _send_all(world)
    with world.engine.begin() as conn:
        messages = incident_evidence.ledger_messages(conn, world.org_id, {})
        assert {m.invoice_number: m.document_kind for m in messages}[credit] == "credit_note"
        # the operator later learns the accountant was never entitled to A0001
        contact_id = conn.execute(sa.text(
            "SELECT id FROM contacts WHERE email = :e"), {"e": ACCOUNTANT}).scalar_one()
        from sealbill.store.incident import incidents

        incidents.add_correction(conn, world.org_id, contact_id=int(contact_id),
                                 account_id=world.scenario.account_ids["A0001"],
                                 entitled=False, valid_from=None, valid_to=None,
                                 reason="never mandated", actor="dpo",
                                 at=datetime.now(UTC))
        radius = radius_in(conn, world.org_id, {})
    view = radius.as_corrected
    assert view.records_by_kind == {"credit_note": 1, "invoice": 1}
    assert {e.document_kind for e in view.exposures if e.invoice_number == credit} == {
        "credit_note"}
    assert "credit_note" in view.data_categories


def test_issuing_a_credit_note_says_which_run_will_mail_it(world: World) -> None:
    from sealbill.app import invoices as app_invoices
    from sealbill.app.context import local_actor

    actor = local_actor()
    before_plan = app_invoices.credit_note(world.engine, actor, world.org_id, "F-000001",
                                           reason="erreur", amount="1.00")
    assert before_plan["delivery"]["period"] == "2026-10"
    render_run(world.engine, world.org_id, world.run_id,
               world.scenario.files_dir / "documents", workers=1)
    _send_all(world)
    after_send = app_invoices.void(world.engine, actor, world.org_id, "F-000002",
                                   reason="wrong customer")
    assert after_send["delivery"] == {"run_id": None, "period": None}


def test_a_credit_note_issued_while_its_run_is_being_planned_waits_for_the_plan(
        pg_engine: Any, tmp_path: Any) -> None:
    """PostgreSQL, two transactions: the plan holds the run's row; the credit note issued
    meanwhile waits for it, sees the plan, and goes to a later run instead of into a plan
    already built without it (on SQLite one writer at a time gives the same order)."""
    import threading
    import time

    from sealbill.store.delivery import plans as plan_store
    from tests.support.scenario import build_scenario

    s = build_scenario(pg_engine, accounts=2, files_dir=tmp_path, render=False)
    locked = threading.Event()

    def planner() -> None:
        with pg_engine.begin() as conn:
            plan_store.lock_run(conn, s.org_id, s.run_id)
            locked.set()
            time.sleep(1.0)
            plan_store.create_plan(conn, s.org_id, s.run_id, None, "planner")

    thread = threading.Thread(target=planner)
    thread.start()
    assert locked.wait(10)
    started = time.monotonic()
    credit_id, _ = issue_credit_note(pg_engine, s.org_id, "F-000001", reason="erreur")
    waited = time.monotonic() - started
    thread.join(10)
    with pg_engine.begin() as conn:
        run_id = conn.execute(sa.select(invoices.c.run_id).where(
            invoices.c.id == credit_id)).scalar()
    assert waited >= 0.5 and run_id is None  # waits for the next run, not lost in this one
