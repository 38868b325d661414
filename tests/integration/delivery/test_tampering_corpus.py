"""The tampering corpus (issue 11): raw database edits between two real cycles, judged on the
wire at a real SMTP server — 0 messages reach an address not entitled by sealed evidence, with
and without an operator who approves every held run and resumes every halted one.

Each example builds its own organization in the test's database (SQLite, then PostgreSQL),
delivers a first cycle through the real send path, applies one class of edit from
``tests/support/tampering.py`` (Hypothesis picks which rows and how many), bills, renders and
delivers the next period. The ground truth is fixed before the edit: the billing contact
verified through sealbill for each account, and the archive address as the organization was
created. Legitimate changes made through sealbill deliver normally (no false alarm).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from sealbill import keys
from sealbill.mail.dkim import DkimSigner
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.send import send_run
from sealbill.store.db import create_engine
from sealbill.store.parties import contact_log, seals
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_events, contact_links, invoices, outbox
from tests.integration.delivery.conftest import FAST, World, invoice_number_in, second_cycle
from tests.support.scenario import account_records, build_scenario
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401 - pytest fixture
from tests.support.tampering import CORPUS

ACCOUNTS = 4
ARCHIVE = "archive@acme-cloud.example"
_slugs = itertools.count(1)
ONE_EXAMPLE = settings(max_examples=1, deadline=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck))


def records() -> list[dict[str, Any]]:
    """Per account: a verified billing contact, a pending one, and an admin."""
    out = account_records(ACCOUNTS)
    for i, record in enumerate(out, start=1):
        record["contacts"] += [{"email": f"second{i}@client{i}.example", "role": "billing"},
                               {"email": f"admin{i}@client{i}.example", "role": "admin"}]
    return out


def new_world(engine: Engine, tmp_path: Path, smtp: SmtpCapture, signer: DkimSigner) -> World:
    slug = f"org-{next(_slugs)}"
    scenario = build_scenario(engine, accounts=ACCOUNTS, files_dir=tmp_path / slug, slug=slug,
                              records=records())
    truth = {f"A{i:04d}": {f"billing{i}@client{i}.example"} for i in range(1, ACCOUNTS + 1)}
    return World(engine, scenario, smtp, signer, truth)


def deliver(world: World, run_id: int, *, operator: bool) -> None:
    """Plan and send; an ``operator`` approves every hold and resumes every halt (3 times)."""
    if world.plan(run_id).verdict == "hold":
        if not operator:
            return
        world.approve(run_id)
    for _ in range(3):
        report = world.send(run_id)
        if report.status != "halted" or not operator:
            return
        control.resume(world.engine, world.org_id, actor="operator", run_id=run_id,
                       reason="approving everything, as an operator under pressure does")


def unentitled(world: World, run_id: int) -> list[str]:
    """(invoice -> address) pairs the server received for this run that the sealed ground
    truth (``world.entitled``, as of that run) does not entitle."""
    with world.engine.begin() as conn:
        owner = {str(n): str(r) for n, r in conn.execute(
            sa.select(invoices.c.number, invoices.c.account_reference).where(
                invoices.c.organization_id == world.org_id, invoices.c.number.is_not(None)))}
        ours = set(conn.execute(sa.select(outbox.c.message_id).where(
            outbox.c.organization_id == world.org_id, outbox.c.run_id == run_id)).scalars())
    wrong = []
    for message in world.smtp.received:
        if message.message_id not in ours:
            continue
        number = invoice_number_in(message.data) or ""
        allowed = world.entitled.get(owner.get(number, ""), set()) | {ARCHIVE}
        wrong += [f"{number} -> {r}" for r in message.rcpt_tos if r.lower() not in allowed]
    return wrong


def delivered_invoices(world: World, run_id: int) -> set[str]:
    with world.engine.begin() as conn:
        return set(conn.execute(sa.select(outbox.c.message_id).where(
            outbox.c.organization_id == world.org_id, outbox.c.run_id == run_id,
            outbox.c.status == "sent")).scalars())


@pytest.fixture
def fresh(any_engine: Engine, tmp_path: Path, smtp_server: SmtpCapture,  # noqa: F811
          dkim_signer: DkimSigner) -> Iterator[Any]:
    yield lambda: new_world(any_engine, tmp_path, smtp_server, dkim_signer)


@pytest.mark.parametrize("edit", sorted(CORPUS))
@ONE_EXAMPLE
@given(data=st.data(), operator=st.booleans())
def test_no_raw_edit_gets_a_message_to_an_address_not_entitled_by_sealed_evidence(
        fresh: Any, edit: str, data: st.DataObject, operator: bool) -> None:
    world = fresh()
    deliver(world, world.run_id, operator=operator)
    assert unentitled(world, world.run_id) == []
    with world.engine.begin() as conn:
        what = CORPUS[edit](conn, world.org_id, data.draw)
    run_id = second_cycle(world)
    deliver(world, run_id, operator=operator)
    assert unentitled(world, run_id) == [], what
    if operator:  # nothing held it for good: the seal rule is what stopped it
        assert any("seal" in cause for cause in world.alert_causes()), world.alert_text()
    else:  # the edit never passes unnoticed: the plan holds it or the guard halts the run
        assert world.run_status(run_id) in ("held", "halted"), what


@ONE_EXAMPLE
@given(data=st.data(), operator=st.booleans())
def test_a_revoked_link_restored_with_its_old_seal_and_its_history_cut_is_refused(
        fresh: Any, data: st.DataObject, operator: bool) -> None:
    """Replay: the row as it was when verified (a valid old seal) written back over a
    revocation, and the revocation's event deleted — the checkpoint outside the database
    counts more events than the table has."""
    world = fresh()
    deliver(world, world.run_id, operator=operator)
    with world.engine.begin() as conn:
        links = list(conn.execute(sa.select(contact_links).where(
            contact_links.c.organization_id == world.org_id, contact_links.c.role == "billing",
            contact_links.c.status == "verified")))
        chosen = data.draw(st.sampled_from(links))
        parties.set_link_status(conn, world.org_id, int(chosen.id), "revoked",
                                actor="customer", reason="left the company")
    ref = next(r for r, a in world.scenario.account_ids.items() if a == chosen.account_id)
    world.entitled[ref] = set()  # revoked through sealbill: entitled to nothing now
    with world.engine.begin() as conn:
        conn.execute(sa.update(contact_links).where(contact_links.c.id == chosen.id)
                     .values(**{k: v for k, v in chosen._mapping.items() if k != "id"}))
        conn.execute(sa.delete(contact_events).where(
            contact_events.c.organization_id == world.org_id,
            contact_events.c.contact_id == chosen.contact_id,
            contact_events.c.event == "revoked"))
    run_id = second_cycle(world)
    deliver(world, run_id, operator=operator)
    assert unentitled(world, run_id) == []
    with world.engine.begin() as conn:
        problems = {p["problem"] for p in contact_log.verify(conn, world.org_id).problems}
    assert "truncated" in problems


@ONE_EXAMPLE
@given(data=st.data(), operator=st.booleans())
def test_a_key_rotation_between_cycles_keeps_legitimate_mail_and_refuses_edits(
        fresh: Any, tmp_path: Path, data: st.DataObject, operator: bool) -> None:
    world = fresh()
    deliver(world, world.run_id, operator=operator)
    directory = tmp_path / f"keyring-{world.scenario.org_slug}"
    directory.mkdir()
    first = keys.load(directory)
    assert first is not None  # SEALBILL_SECRET_KEY of the session
    keys.use(world.engine, first)
    try:
        rotated, previous = keys.rotate(directory)
        keys.use(world.engine, rotated)
        with world.engine.begin() as conn:
            counts = seals.reseal_all(conn)
            assert counts["contact"]["not_valid"] == 0
            edit = data.draw(st.sampled_from(["none", "exchange_addresses", "fan_out_outsider"]))
            if edit != "none":
                CORPUS[edit](conn, world.org_id, data.draw)
        assert rotated.keys.active != previous
        run_id = second_cycle(world)
        deliver(world, run_id, operator=operator)
        assert unentitled(world, run_id) == []
        if edit == "none":
            assert len(delivered_invoices(world, run_id)) == ACCOUNTS
    finally:
        keys.use(world.engine, first)


def test_legitimate_changes_through_sealbill_deliver_normally(fresh: Any) -> None:
    """Add and verify a contact, replace an address (and verify the new one), move a
    contact to another account with a new verification: the next cycle delivers every
    invoice, to exactly those addresses, and the seal rule raises no alarm."""
    world = fresh()
    deliver(world, world.run_id, operator=False)
    engine, org = world.engine, world.org_id
    ids = world.scenario.account_ids
    at = datetime.now(UTC)
    with engine.begin() as conn:
        added = parties.add_contact(conn, org, "new-accountant@firm-comptable.fr", actor="ops")
        link = parties.link_contact(conn, org, added, ids["A0001"], "billing", actor="ops")
        parties.set_link_status(conn, org, link, "verified", actor="ops", method="operator",
                                reason="mandate letter", at=at)
        two = world.scenario.contact_ids["billing2@client2.example"]
        parties.change_contact_email(conn, org, two, "billing2@client2-new.fr", actor="ops")
        relink = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == two, contact_links.c.role == "billing")).scalar_one()
        parties.set_link_status(conn, org, relink, "verified", actor="ops", method="operator",
                                reason="confirmed by phone")
        three = world.scenario.contact_ids["billing3@client3.example"]
        old = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == three, contact_links.c.role == "billing")).scalar_one()
        parties.set_link_status(conn, org, old, "revoked", actor="ops", reason="moved")
        successor = parties.add_contact(conn, org, "billing3-new@client3.example", actor="ops")
        parties.set_link_status(
            conn, org, parties.link_contact(conn, org, successor, ids["A0003"], "billing",
                                            actor="ops"),
            "verified", actor="ops", method="operator", reason="successor named by A0003")
        moved = parties.link_contact(conn, org, three, ids["A0004"], "billing", actor="ops")
        parties.set_link_status(conn, org, moved, "verified", actor="ops", method="operator",
                                reason="moved to the parent company")
    world.entitled["A0001"].add("new-accountant@firm-comptable.fr")
    world.entitled["A0002"] = {"billing2@client2-new.fr"}
    world.entitled["A0003"] = {"billing3-new@client3.example"}
    world.entitled["A0004"].add("billing3@client3.example")
    run_id = second_cycle(world)
    if world.plan(run_id).verdict == "hold":
        world.approve(run_id)  # the diff gate surfaces the changes; the seals must not object
    report = world.send(run_id)
    assert report.violations == [], report.violations
    assert unentitled(world, run_id) == []
    assert len(delivered_invoices(world, run_id)) == ACCOUNTS
    with engine.begin() as conn:
        assert contact_log.verify(conn, org).ok


class _RotateAfterFirst:
    """A transport that, once the first message is accepted, has "another process" rotate
    the key and re-seal every row (its own engine, bound to the new keyring)."""

    def __init__(self, inner: Any, rotate: Any) -> None:
        self.inner, self.rotate, self.done = inner, rotate, False

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> Any:
        result = self.inner.send(mail_from, rcpt_to, data)
        if not self.done:
            self.done = True
            self.rotate()
        return result

    def close(self) -> None:
        self.inner.close()


def test_a_key_rotation_mid_run_by_another_process_keeps_the_run_going(
        fresh: Any, tmp_path: Path) -> None:
    """The sender loaded the keyring before the rotation; rows re-sealed with the new key
    name a key id it does not hold, so it reads its keyring directory again (never a
    refusal of legitimate mail, never an acceptance of an unknown key it cannot read)."""
    world = fresh()
    directory = tmp_path / f"keyring-{world.scenario.org_slug}"
    directory.mkdir()
    first = keys.load(directory)
    assert first is not None
    keys.use(world.engine, first)
    rotated_to: list[str] = []

    def rotate() -> None:
        rotated, _ = keys.rotate(directory)
        other = create_engine(world.engine.url.render_as_string(hide_password=False))
        keys.use(other, rotated)
        with other.begin() as conn:
            assert seals.reseal_all(conn)["link"]["resealed"] > 0
        other.dispose()
        rotated_to.append(rotated.keys.active)

    world.plan()
    report = send_run(world.engine, world.org_id, world.run_id, signer=world.signer,
                      transport=_RotateAfterFirst(world.transport(), rotate),
                      options=FAST)
    assert rotated_to and report.violations == [], report.violations
    assert report.status == "sent" and len(delivered_invoices(world, world.run_id)) == ACCOUNTS
    assert unentitled(world, world.run_id) == []
    with world.engine.begin() as conn:
        assert keys.for_connection(conn).keys.active == rotated_to[0]
