"""The guard's policy rules and the plan's entitlement report, against a real SMTP server, on
SQLite and PostgreSQL.

Proven here: a reserved address written straight into the tables is refused by the guard and
that message set aside (nothing reaches it), the operator confirms the set-aside and the rest
goes; a retried message is checked again from scratch; a changed archive address holds the plan
and is shown, and an archive changed after the plan sets the message aside; a one-account change
made through sealbill is listed with its evidence while the run proceeds; one outsider on one
account holds the run (by count); an approved plan whose envelope is widened afterwards sets
that message aside.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.domain.delivery_plan import DeliveryPolicy
from sealbill.pipeline.delivery import set_aside
from sealbill.pipeline.delivery.control import status
from sealbill.pipeline.delivery.plan import plan_summary
from sealbill.store.parties import records as parties
from sealbill.store.schema import (
    contact_links,
    contacts,
    delivery_envelopes,
    organizations,
    outbox,
)
from tests.integration.delivery.conftest import World, second_cycle


@pytest.fixture(params=["world", "pg_world"])
def both(request: pytest.FixtureRequest) -> Iterator[World]:
    yield request.getfixturevalue(request.param)


def raw_email(world: World, old: str, new: str) -> None:
    """A "migration" rewriting a contact's address in place, links left verified."""
    with world.engine.begin() as conn:
        conn.execute(sa.update(contacts).where(contacts.c.organization_id == world.org_id,
                                               contacts.c.email == old).values(email=new))


def outbox_states(world: World, run_id: int | None = None) -> dict[str, str]:
    """invoice's account reference -> its message's outbox status."""
    summary = plan_summary(world.engine, world.org_id, run_id or world.run_id)
    return {e["account"]: e["status"] for e in summary["envelopes"]}


def finding(report: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["kind"] == kind)


def test_a_reserved_address_written_raw_is_set_aside_and_the_rest_goes(both: World) -> None:
    world = both
    raw_email(world, "billing2@client2.example", "billing@localhost")
    assert world.plan().verdict == "hold"  # the history does not explain it
    world.approve()  # an operator under pressure approves
    report = world.send()
    assert report.status == "halted"
    rules = {v["rule"] for e in report.violations for v in e["violations"]}
    assert "address_policy" in rules
    assert "billing@localhost" not in world.smtp.all_recipients()
    assert outbox_states(world)["A0002"] == "set_aside"
    run = status(world.engine, world.org_id, world.run_id)
    assert run["exit_code"] == set_aside.EXIT_HALTED
    [item] = run["set_aside"]
    assert item["by"] == "guard" and item["account"] == "A0002"

    done = set_aside.set_aside(world.engine, world.org_id, world.run_id, item["invoice"],
                               actor="ops", reason="address is a placeholder; customer asked")
    assert done["run_released"]
    report = world.send()
    states = outbox_states(world)
    assert states.pop("A0002") == "set_aside" and set(states.values()) == {"sent"}
    assert report.status == "incomplete"
    assert set_aside.exit_code(report.status, report.counts) == set_aside.EXIT_HALTED
    assert world.wrong_deliveries() == [] and world.ledger_ok()
    after = status(world.engine, world.org_id, world.run_id)
    assert after["outbox"]["set_aside"] == 1 and after["set_aside"][0]["by"] == "ops"

    # retried unchanged: checked again, set aside again; fixed, then retried: delivered
    set_aside.retry(world.engine, world.org_id, world.run_id, item["invoice"], actor="ops")
    assert world.send().status == "halted"
    assert outbox_states(world)["A0002"] == "set_aside"
    raw_email(world, "billing@localhost", "billing2@client2.example")
    set_aside.retry(world.engine, world.org_id, world.run_id, item["invoice"], actor="ops")
    assert world.plan(replan=True).verdict == "proceed"  # the envelope rebuilt from today's
    final = world.send()
    assert final.status == "sent" and set(outbox_states(world).values()) == {"sent"}
    assert set_aside.exit_code(final.status, final.counts) == set_aside.EXIT_OK
    assert "billing2@client2.example" in world.smtp.all_recipients()
    assert world.wrong_deliveries() == [] and world.ledger_ok()


def test_a_changed_archive_address_holds_the_next_plan_and_is_shown(both: World) -> None:
    world = both
    world.plan()
    assert world.send().status == "sent"
    with world.engine.begin() as conn:
        conn.execute(sa.update(organizations).where(organizations.c.id == world.org_id)
                     .values(archive_email="copies@acme-cloud.example"))
    run = second_cycle(world)
    result = world.plan(run)
    assert result.verdict == "hold"
    moved = finding(dict(result.report), "archive_changed")
    assert moved["holds"] and moved["items"] == [{"before": "archive@acme-cloud.example",
                                                   "after": "copies@acme-cloud.example"}]
    assert any("archive copy: archive@acme-cloud.example -> copies@acme-cloud.example" in line
               for line in result.report["lines"])
    summary = plan_summary(world.engine, world.org_id, run)
    assert summary["archive"] == "copies@acme-cloud.example"
    assert all(e["smtp_recipients"][-1] == "copies@acme-cloud.example"
               for e in summary["envelopes"])


def test_an_archive_changed_after_the_plan_is_never_added_at_send_time(both: World) -> None:
    world = both
    world.plan()
    with world.engine.begin() as conn:
        conn.execute(sa.update(organizations).where(organizations.c.id == world.org_id)
                     .values(archive_email="copies@acme-cloud.example"))
    report = world.send()
    assert report.status == "halted"
    assert {v["rule"] for e in report.violations for v in e["violations"]} >= {"archive"}
    assert "copies@acme-cloud.example" not in world.smtp.all_recipients()


def test_a_one_account_change_is_listed_with_its_evidence(both: World) -> None:
    world = both
    world.plan()
    assert world.send().status == "sent"
    with world.engine.begin() as conn:
        contact = world.scenario.contact_ids["billing1@client1.example"]
        parties.change_contact_email(conn, world.org_id, contact,
                                     "accounts1@client1.example", actor="alice")
        link = conn.execute(sa.text("select id from contact_links where contact_id = :c"),
                            {"c": contact}).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "verified", actor="bob",
                                method="operator", reason="phoned the customer")
    world.entitled["A0001"] |= {"accounts1@client1.example"}  # from the next cycle
    run = second_cycle(world)
    result = world.plan(run)
    assert result.verdict == "proceed"  # one change is under the thresholds ...
    changes = finding(dict(result.report), "recipient_changes")
    assert changes["count"] == 1  # ... and listed all the same
    [item] = changes["items"]
    assert (item["account"], item["before"], item["after"]) == (
        "A0001", ["billing1@client1.example"], ["accounts1@client1.example"])
    events = {(e["event"], e["actor"], e["method"]) for e in item["evidence"]}
    assert ("address_changed", "alice", None) in events
    assert ("verified", "bob", "operator") in events
    text = "\n".join(result.report["lines"])
    assert "A0001" in text and "billing1@client1.example -> accounts1@client1.example" in text
    assert "verified by bob via operator" in text
    assert world.send(run).status == "sent" and world.wrong_deliveries() == []


def test_one_outsider_on_one_account_holds_the_run(both: World) -> None:
    world = both
    world.plan()
    assert world.send().status == "sent"
    with world.engine.begin() as conn:  # one link written around sealbill, then "verified"
        outsider = parties.add_contact(conn, world.org_id, "eve@evil.example", actor="x")
        link = parties.link_contact(conn, world.org_id, outsider,
                                    world.scenario.account_ids["A0003"], "billing", actor="x")
        conn.execute(sa.text("update contact_links set status = 'verified' where id = :i"),
                     {"i": link})
    run = second_cycle(world)
    result = world.plan(run)
    assert result.verdict == "hold"
    fan_in = finding(dict(result.report), "fan_in_unexplained")
    assert fan_in["holds"] and fan_in["count"] == 1 and fan_in["limit"] == 0
    assert fan_in["items"][0]["email"] == "eve@evil.example"
    assert fan_in["items"][0]["unexplained"][0]["account"] == "A0003"
    listed = finding(dict(result.report), "recipient_changes")["items"]
    assert [i["account"] for i in listed] == ["A0003"]


def test_an_envelope_widened_after_approval_is_set_aside(both: World) -> None:
    world = both
    with world.engine.begin() as conn:  # a change made through sealbill: sealed, and held
        cid = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.email == "billing4@client4.example")).scalar_one()
        parties.change_contact_email(conn, world.org_id, cid, "billing4b@client3.example",
                                     actor="ops")
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == cid)).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                method="operator", reason="phoned the customer")
    world.entitled["A0004"] = {"billing4b@client3.example"}
    strict = DeliveryPolicy(first_cycle="hold")  # the first cycle of the world: held
    assert world.plan(policy=strict).verdict == "hold"
    world.approve()
    with world.engine.begin() as conn:  # after approval: a verified contact slipped in
        contact = parties.add_contact(conn, world.org_id, "grab@evil.example", actor="x")
        link = parties.link_contact(conn, world.org_id, contact,
                                    world.scenario.account_ids["A0002"], "billing", actor="x")
        parties.set_link_status(conn, world.org_id, link, "verified", actor="x",
                                method="operator", reason="looks fine")
        row = conn.execute(sa.select(delivery_envelopes.c.id, delivery_envelopes.c.recipients)
                           .where(delivery_envelopes.c.account_id
                                  == world.scenario.account_ids["A0002"])).one()
        conn.execute(sa.update(delivery_envelopes).where(delivery_envelopes.c.id == row.id)
                     .values(recipients=[*row.recipients,
                                         {"contact_id": contact, "email": "grab@evil.example"}]))
    report = world.send()
    assert report.status == "halted"
    rules = {v["rule"] for e in report.violations for v in e["violations"]}
    assert "approval" in rules
    assert "grab@evil.example" not in world.smtp.all_recipients()
    assert outbox_states(world)["A0002"] == "set_aside"
    with world.engine.begin() as conn:
        evidence = conn.execute(sa.select(outbox.c.set_aside_evidence).where(
            outbox.c.status == "set_aside")).scalar_one()
    assert any(v["rule"] == "approval" for v in evidence["violations"])
