"""``plan_run(..., replan=True)`` (``sealbill run plan RUN --replan``): rebuild the unsent part
of a delivery plan after contacts changed, against a real SMTP server.

Proven here: a message that already left is never sent again and its envelope is kept as it
was; the envelopes not sent take the recipients resolved now (a revoked contact is gone, a new
verified one is there); the diff gate judges the rebuilt plan (an unexplained link, or too many
domain changes against the previous cycle, holds the run, and a replan that holds needs a new
approval); the canary slice survives a replan made before it was sent; a run the guard halted
can be rebuilt and finished; and in every case nobody unentitled receives anything and the
ledger verifies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.domain.delivery_plan import DeliveryPolicy
from sealbill.pipeline.delivery import control
from sealbill.pipeline.delivery.plan import PlanError, plan_summary
from sealbill.pipeline.delivery.send import SendError, SendReport, send_run
from sealbill.store.delivery import plans as plan_store
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links, contacts, delivery_ledger, outbox
from tests.integration.delivery.conftest import FAST, World, second_cycle

LONG_AGO = datetime.now(UTC) - timedelta(days=60)


def envelopes(world: World, run_id: int | None = None) -> dict[str, dict[str, Any]]:
    """account reference -> its envelope in the stored plan."""
    summary = plan_summary(world.engine, world.org_id, run_id or world.run_id)
    return {e["account"]: e for e in summary["envelopes"]}


def send_canary_then_pause(world: World, run_id: int | None = None) -> SendReport:
    """Send with the kill switch thrown as soon as the first message is recorded: the canary
    leaves, the rest stays queued (the sender reads the switch before each message)."""
    def pause_now(_: int) -> None:
        control.pause(world.engine, world.org_id, actor="ops", reason="stop after the canary")

    report = send_run(world.engine, world.org_id, run_id or world.run_id,
                      transport=world.transport(), signer=world.signer, options=FAST,
                      on_progress=pause_now)
    assert report.stopped == "paused", report
    return report


def lift_pause(world: World) -> None:
    control.resume(world.engine, world.org_id, actor="ops", reason="contacts fixed")


def revoke(world: World, reference: str, email: str) -> None:
    with world.engine.begin() as conn:
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == world.org_id,
            contact_links.c.account_id == world.scenario.account_ids[reference],
            contact_links.c.contact_id == world.scenario.contact_ids[email])).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                reason="left the company")


def add_verified(world: World, reference: str, email: str, *,
                 at: datetime | None = None) -> None:
    """A new billing contact through sealbill (history recorded), verified by an operator."""
    with world.engine.begin() as conn:
        contact = parties.add_contact(conn, world.org_id, email, actor="ops", at=at)
        link = parties.link_contact(conn, world.org_id, contact,
                                    world.scenario.account_ids[reference], "billing",
                                    actor="ops", at=at)
        parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                method="operator", reason="customer asked", at=at)


def received_by_message(world: World) -> dict[str, list[tuple[str, ...]]]:
    """Message-ID -> the RCPT lists of every DATA the server received with it."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for message in world.smtp.received:
        out.setdefault(str(message.message_id), []).append(message.rcpt_tos)
    return out


def assert_delivered_exactly_once(world: World, run_id: int | None = None) -> None:
    run_id = run_id or world.run_id
    with world.engine.begin() as conn:
        statuses = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.status).where(
            outbox.c.run_id == run_id)).all())
        ledger_ids = conn.execute(sa.select(delivery_ledger.c.message_id).where(
            delivery_ledger.c.run_id == run_id)).scalars().all()
    assert set(statuses.values()) == {"sent"}, statuses
    seen = received_by_message(world)
    assert all(len(seen[m]) == 1 for m in statuses), seen  # once each, never again
    assert sorted(ledger_ids) == sorted(statuses)
    assert world.wrong_deliveries() == []
    assert world.ledger_ok()


@pytest.mark.parametrize("which", ["world", "pg_world"])
def test_replan_after_the_canary_keeps_what_left_and_readdresses_the_rest(
        which: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    assert world.plan().verdict == "proceed"
    before = envelopes(world)
    [canary] = [ref for ref, e in before.items() if e["canary"]]
    send_canary_then_pause(world)
    assert list(received_by_message(world)) == [before[canary]["message_id"]]
    moved, grown, *_ = sorted(ref for ref in before if ref != canary)
    m, g, c = (int(ref[1:]) for ref in (moved, grown, canary))

    # Contacts change while the run is paused: one account's contact is replaced, another
    # gets a second contact, and the canary account (already served) loses its contact.
    revoke(world, moved, f"billing{m}@client{m}.example")
    add_verified(world, moved, f"accounts{m}@client{m}.example")
    add_verified(world, grown, f"cfo{g}@client{g}.example")
    revoke(world, canary, f"billing{c}@client{c}.example")
    world.entitled[moved] = {f"accounts{m}@client{m}.example"}  # the old one: nothing more
    world.entitled[grown].add(f"cfo{g}@client{g}.example")

    result = world.plan(replan=True)
    assert (result.verdict, result.envelopes, result.replanned) == ("proceed", 4, 3)
    assert world.run_status() == "approved"
    with world.engine.begin() as conn:
        recorded = plan_store.plan_row(conn, world.org_id, world.run_id)["report"]
    assert (recorded["replanned_by"], recorded["replanned_envelopes"]) == ("planner", 3)
    after = envelopes(world)
    # The message that left is untouched: same envelope, Message-ID, recipients, status.
    assert after[canary] == {**before[canary], "status": "sent"}
    assert after[moved]["recipients"] == [f"accounts{m}@client{m}.example"]
    assert after[grown]["recipients"] == [f"billing{g}@client{g}.example",
                                          f"cfo{g}@client{g}.example"]
    for ref in (r for r in after if r != canary):
        assert after[ref]["status"] == "queued" and not after[ref]["canary"]
        assert after[ref]["envelope_id"] != before[ref]["envelope_id"]

    lift_pause(world)
    report = world.send()
    assert report.status == "sent" and report.stopped is None and not report.violations
    assert_delivered_exactly_once(world)
    seen = received_by_message(world)
    archive = world.archive()
    assert seen[after[moved]["message_id"]] == [(f"accounts{m}@client{m}.example", archive)]
    assert set(seen[after[grown]["message_id"]][0]) == {
        f"billing{g}@client{g}.example", f"cfo{g}@client{g}.example", archive}
    assert f"billing{m}@client{m}.example" not in world.smtp.all_recipients()
    with world.engine.begin() as conn:
        ledger_rcpts = {str(mid): sorted(r["email"] for r in rcpts if r.get("contact_id"))
                        for mid, rcpts in conn.execute(sa.select(
                            delivery_ledger.c.message_id, delivery_ledger.c.recipients))}
    assert ledger_rcpts[after[moved]["message_id"]] == [f"accounts{m}@client{m}.example"]
    assert ledger_rcpts[before[canary]["message_id"]] == [f"billing{c}@client{c}.example"]


def test_an_unexplained_link_found_at_replan_holds_the_run(world: World) -> None:
    world.plan()
    [canary] = [ref for ref, e in envelopes(world).items() if e["canary"]]
    send_canary_then_pause(world)
    target = next(ref for ref in sorted(world.scenario.account_ids) if ref != canary)
    with world.engine.begin() as conn:  # a data migration: raw rows, no contact history
        rogue = int(conn.execute(sa.insert(contacts).values(
            organization_id=world.org_id, email="invoices@attacker.example", name="",
            created_at=datetime.now(UTC)).returning(contacts.c.id)).scalar_one())
        link = int(conn.execute(sa.insert(contact_links).values(
            organization_id=world.org_id, contact_id=rogue,
            account_id=world.scenario.account_ids[target], role="billing", status="verified",
            status_changed_at=LONG_AGO, status_changed_by="migration", verified_at=LONG_AGO,
        ).returning(contact_links.c.id)).scalar_one())
    lift_pause(world)

    result = world.plan(replan=True)
    assert result.verdict == "hold" and world.run_status() == "held"
    [finding] = [f for f in result.report["findings"] if f["kind"] == "unexplained_links"]
    assert finding["holds"] and finding["items"][0]["contact_id"] == rogue
    assert "plan_hold" in world.alert_causes()
    assert "invoices@attacker.example" in envelopes(world)[target]["recipients"]
    with pytest.raises(SendError, match="approve"):
        world.send()
    assert len(world.smtp.received) == 1  # the canary, nothing since

    # The operator removes the link (recorded) and replans: the gate lets it go.
    with world.engine.begin() as conn:
        parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                reason="written by a migration, not by the customer")
    assert world.plan(replan=True).verdict == "proceed"
    assert world.send().status == "sent"
    assert "invoices@attacker.example" not in world.smtp.all_recipients()
    assert_delivered_exactly_once(world)


def test_a_replan_that_holds_needs_a_new_approval(world: World) -> None:
    hold_first = DeliveryPolicy(first_cycle="hold")
    assert world.plan(policy=hold_first).verdict == "hold"
    world.approve()
    assert world.run_status() == "approved"
    add_verified(world, "A0001", "cfo1@client1.example")
    world.entitled["A0001"].add("cfo1@client1.example")
    assert world.plan(replan=True, policy=hold_first).verdict == "hold"
    assert world.run_status() == "held"
    summary = plan_summary(world.engine, world.org_id, world.run_id)
    assert summary["approved_by"] is None and not summary["proceed"]
    with pytest.raises(SendError, match="approve"):
        world.send()
    assert world.smtp.received == []
    world.approve()
    assert world.send().status == "sent"
    assert "cfo1@client1.example" in world.smtp.all_recipients()
    assert_delivered_exactly_once(world)


def test_replan_diffs_against_the_previous_cycle(world: World) -> None:
    """Second cycle: after its canary, three accounts move to new addresses on new domains
    (through sealbill, verified long ago): more domain changes than the policy allows since
    last cycle, so the replanned run holds until someone else approves it."""
    world.plan()
    assert world.send().status == "sent"
    run2 = second_cycle(world)
    assert world.plan(run2).verdict == "proceed"
    [canary] = [ref for ref, e in envelopes(world, run2).items() if e["canary"]]
    send_canary_then_pause(world, run2)
    rest = sorted(ref for ref in world.scenario.account_ids if ref != canary)
    for ref in rest:
        i = int(ref[1:])
        revoke(world, ref, f"billing{i}@client{i}.example")
        add_verified(world, ref, f"billing@new-provider-{i}.example", at=LONG_AGO)
        world.entitled[ref] = {f"billing{i}@client{i}.example",  # last cycle's message
                               f"billing@new-provider-{i}.example"}
    lift_pause(world)

    result = world.plan(run2, replan=True)
    assert result.verdict == "hold" and result.replanned == len(rest)
    [domains] = [f for f in result.report["findings"] if f["kind"] == "domain_changes"]
    assert domains["holds"] and domains["count"] == len(rest)
    assert result.report["previous_plan_id"] is not None
    with pytest.raises(SendError, match="approve"):
        world.send(run2)
    world.approve(run2)
    assert world.send(run2).status == "sent"
    assert_delivered_exactly_once(world, run2)
    for ref in rest:
        i = int(ref[1:])
        message_id = envelopes(world, run2)[ref]["message_id"]
        assert received_by_message(world)[message_id] == [
            (f"billing@new-provider-{i}.example", world.archive())]


@pytest.mark.parametrize("change", ["canary account gains a contact",
                                    "canary account loses its only contact"])
def test_a_replan_before_the_canary_left_keeps_a_canary(world: World, change: str) -> None:
    world.plan()
    [canary] = [ref for ref, e in envelopes(world).items() if e["canary"]]
    c = int(canary[1:])
    if change == "canary account gains a contact":
        add_verified(world, canary, f"cfo{c}@client{c}.example")
        world.entitled[canary].add(f"cfo{c}@client{c}.example")
    else:
        revoke(world, canary, f"billing{c}@client{c}.example")
        world.entitled[canary] = set()
    world.plan(replan=True)
    after = envelopes(world)
    canaries = [ref for ref, e in after.items() if e["canary"] and e["recipients"]]
    assert len(canaries) == 1, after
    if change == "canary account gains a contact":
        assert canaries == [canary]  # the same slice as before the replan
    else:
        assert after[canary]["status"] == "held" and not after[canary]["recipients"]

    # The canary still gates the run: it fails, nothing else is even tried.
    world.smtp.faults.extend(["4xx"] * 50)
    report = world.send()
    assert report.status == "halted" and report.stopped == "canary_failed"
    assert set(received_by_message(world)) == {after[canaries[0]]["message_id"]}
    assert world.wrong_deliveries() == []


def test_a_run_the_guard_halted_is_resumed_then_replanned_and_finished(world: World) -> None:
    """The plan went stale (a contact replaced after planning): the guard stops that message
    and halts the run; a replan is refused until someone resumes the run (recorded), then
    rebuilds the stopped envelope with today's contact."""
    world.plan()
    [canary] = [ref for ref, e in envelopes(world).items() if e["canary"]]
    stale = next(ref for ref in sorted(world.scenario.account_ids) if ref != canary)
    s = int(stale[1:])
    revoke(world, stale, f"billing{s}@client{s}.example")
    add_verified(world, stale, f"accounts{s}@client{s}.example")
    world.entitled[stale] = {f"accounts{s}@client{s}.example"}
    report = world.send()
    assert report.status == "halted" and report.violations
    assert envelopes(world)[stale]["status"] == "set_aside"
    sent_before = {m: r for m, r in received_by_message(world).items()}
    assert f"billing{s}@client{s}.example" not in world.smtp.all_recipients()

    with pytest.raises(PlanError, match="resume"):
        world.plan(replan=True)
    resumed = control.resume(world.engine, world.org_id, actor="ops", run_id=world.run_id,
                             reason="contact replaced after planning: replan")
    assert resumed["requeued"] == 1
    result = world.plan(replan=True)
    assert result.verdict == "proceed"
    rebuilt = envelopes(world)
    assert rebuilt[stale]["recipients"] == [f"accounts{s}@client{s}.example"]
    assert all(rebuilt[ref]["status"] == "sent" for ref in rebuilt
               if rebuilt[ref]["message_id"] in sent_before)
    assert world.send().status == "sent"
    assert_delivered_exactly_once(world)
