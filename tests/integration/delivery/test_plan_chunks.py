"""The plan stage works a chunk at a time (pipeline/delivery/plan.py, plan_judge.py) and
decides what the whole-plan computation decided, on SQLite and PostgreSQL: the verdict and
report of :func:`evaluate` over every envelope read at once (the code the stage ran before),
the canary slice of the hash ranking over every sendable envelope, the approval digests of
every envelope — with chunks and groups of two, and of a thousand. And it never reads a plan
whole: the whole-plan readers are not called, no read returns more than its chunk."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sealbill.domain.delivery_plan import DeliveryPolicy, evaluate
from sealbill.domain.entitlement_changes import changed_pairs
from sealbill.domain.send_policy import envelope_digest
from sealbill.pipeline.delivery import plan, plan_chunks, plan_judge
from sealbill.store.delivery import plan_links, plan_reads
from sealbill.store.delivery import plans as store
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links, contacts, delivery_plans
from tests.integration.delivery.conftest import World, make_world, second_cycle

SMALL = DeliveryPolicy(max_fan_in=2, fan_in_growth=1, recipient_cap=1)
ACCOUNTS = 9


@pytest.fixture(params=["sqlite", "postgresql"])
def busy(request: pytest.FixtureRequest, tmp_path: Any, smtp_server: Any,
         dkim_signer: Any) -> Iterator[World]:
    """A second cycle with changes of every kind since the first (sent) one."""
    engine = request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}"
                                     "_engine")
    world = make_world(engine, tmp_path, smtp_server, dkim_signer, accounts=ACCOUNTS)
    world.plan()
    assert world.send().status == "sent"
    ids = world.scenario.account_ids
    with engine.begin() as conn:
        accountant = parties.add_contact(conn, world.org_id, "compta@accountant.example",
                                         actor="ops")
        for ref in ("A0002", "A0005", "A0007", "A0008"):  # fan-in grown, over the maximum
            link = parties.link_contact(conn, world.org_id, accountant, ids[ref], "billing",
                                        actor="ops")
            parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                    method="operator", reason="mandate")
        billing3 = world.scenario.contact_ids["billing3@client3.example"]
        parties.change_contact_email(conn, world.org_id, billing3,
                                     "new3@client3.example", actor="alice")
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == billing3)).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "verified", actor="bob",
                                method="operator", reason="phoned the customer")
        outsider = parties.add_contact(conn, world.org_id, "eve@evil.example", actor="x")
        link = parties.link_contact(conn, world.org_id, outsider, ids["A0006"], "billing",
                                    actor="x")
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link)
                     .values(status="verified"))  # around sealbill: unexplained
    world.scenario.run_id = second_cycle(world)
    yield world


def _chunks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(plan, "CHUNK", size)
    monkeypatch.setattr(plan_chunks, "CHUNK", size)
    monkeypatch.setattr(plan_judge, "GROUP", size)


def _whole_report(world: World, plan_id: int) -> dict[str, Any]:
    """The report as the stage computed it before: every envelope read at once."""
    with world.engine.begin() as conn:
        run = store.run_row(conn, world.org_id, world.run_id)
        rows = store.envelope_rows(conn, world.org_id, plan_id)
        planned = [store.to_planned(row) for row in rows]
        now = conn.execute(sa.select(delivery_plans.c.report).where(
            delivery_plans.c.id == plan_id)).scalar_one()["now"]
        pairs = [(e.account_id, cid) for e, row in zip(planned, rows, strict=True)
                 if row["outbox_status"] not in ("sent", "failed_permanent")
                 for cid, _ in e.recipients]
        when = _parse(now)
        links = plan_links.link_facts(conn, world.org_id, pairs, when,
                                       plan_judge.name_is_safe)
        previous = store.previous_plan(conn, world.org_id, str(run["period"]))
        before = previous[1] if previous else None
        evidence = store.change_evidence(conn, world.org_id,
                                         changed_pairs(planned, before or []))
        archive = store.plan_archive(conn, world.org_id, plan_id)
        evaluation = evaluate(planned, before, links, SMALL, when, archive=archive,
                              evidence=evidence, previous_archive=store.plan_archive(
                                  conn, world.org_id, previous[0]) if previous else None)
    report = evaluation.report()
    report["archive"] = archive
    report["previous_plan_id"] = previous[0] if previous else None
    report["policy"] = SMALL.as_dict()
    return report


def _parse(text: str) -> Any:
    from datetime import datetime
    return datetime.fromisoformat(text)


def _plan(world: World) -> dict[str, Any]:
    from datetime import UTC, datetime
    now = datetime.now(UTC)
    result = world.plan(policy=SMALL, canary_share=0.3, now=now)
    with world.engine.begin() as conn:  # the instant, kept for the reference computation
        report = {**result.report, "now": now.isoformat()}
        conn.execute(sa.update(delivery_plans).where(delivery_plans.c.id == result.plan_id)
                     .values(report=report))
    return {"plan_id": result.plan_id, "verdict": result.verdict,
            "report": dict(result.report), "envelopes": result.envelopes}


@pytest.mark.parametrize("size", [2, 1000])
def test_the_plan_judged_by_chunks_is_the_whole_plan_judged_at_once(
        busy: World, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    _chunks(monkeypatch, size)
    done = _plan(busy)
    kinds = {f["kind"]: f for f in done["report"]["findings"]}
    assert done["verdict"] == "hold" and done["envelopes"] == ACCOUNTS
    # the world has what the comparison must cover
    assert kinds["fan_in_over_max"]["count"] == 1 and kinds["fan_in_grown"]["count"] == 1
    assert kinds["fan_in_unexplained"]["count"] == 1 and kinds["unexplained_links"]["count"]
    assert kinds["recipient_changes"]["count"] == 6 and kinds["over_cap"]["count"] == 5
    assert kinds["new_pairs"]["count"] == 6 and kinds["domain_changes"]["count"] == 5
    assert done["report"] == _whole_report(busy, done["plan_id"])


def test_the_canary_is_the_lowest_hashes_of_the_sendable_envelopes(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _chunks(monkeypatch, 2)
    done = _plan(busy)
    with busy.engine.begin() as conn:
        rows = store.envelope_rows(conn, busy.org_id, done["plan_id"])
    sendable = [r for r in rows if r["recipients"]]
    size = max(1, math.ceil(0.3 * len(sendable)))
    ranked = sorted(sendable, key=lambda r: hashlib.sha256(
        f"{busy.run_id}:{r['invoice_id']}".encode()).hexdigest())
    assert size == 3
    assert {r["invoice_id"] for r in rows if r["is_canary"]} == {
        r["invoice_id"] for r in ranked[:size]}


def test_an_approval_by_chunks_binds_every_envelope_and_what_was_shown(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _chunks(monkeypatch, 2)
    done = _plan(busy)
    busy.approve()
    with busy.engine.begin() as conn:
        rows = store.envelope_rows(conn, busy.org_id, done["plan_id"])
        stored = store.plan_row(conn, busy.org_id, busy.run_id)
    assert stored is not None
    assert stored["approved_digest"] == plan.differences_digest(stored["report"])
    assert [r["approved_sha256"] for r in rows] == [
        envelope_digest(int(r["account_id"]), store.to_planned(r).recipients,
                        stored["archive_email"]) for r in rows]


def _most(counted: dict[str, int], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def counting(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if isinstance(found, list):
            counted[name] = max(counted.get(name, 0), len(found))
            return found
        def chunks() -> Iterator[Any]:
            for chunk in found:
                counted[name] = max(counted.get(name, 0), len(chunk))
                yield chunk
        return chunks()
    return counting


def test_planning_and_approving_never_read_more_than_a_chunk(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a whole plan was read")

    for name in ("envelope_rows", "planned_envelopes", "previous_plan"):
        monkeypatch.setattr(store, name, whole)
    counted: dict[str, int] = {}
    monkeypatch.setattr(store, "run_invoices", _most(counted, "invoices", store.run_invoices))
    for name in ("envelopes_of_accounts", "envelope_chunks"):
        monkeypatch.setattr(plan_reads, name, _most(counted, name,
                                                    getattr(plan_reads, name)))
    _chunks(monkeypatch, 2)
    result = busy.plan(policy=SMALL)
    assert result.verdict == "hold" and result.envelopes == ACCOUNTS
    busy.approve()
    # two invoices a chunk; a group of two accounts has one envelope each in each plan
    assert counted == {"invoices": 2, "envelopes_of_accounts": 2, "envelope_chunks": 2}
    with busy.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar()


def test_the_review_read_by_groups_lists_what_the_whole_plan_lists(
        busy: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbill.app import ids, run_review
    from sealbill.app.context import local_actor

    plan_id = _plan(busy)["plan_id"]
    with busy.engine.begin() as conn:
        ref = ids.encode(conn, busy.org_id, "run", busy.run_id)
        rows = store.envelope_rows(conn, busy.org_id, plan_id)
        previous = store.previous_plan(conn, busy.org_id, "2026-11")
    assert previous is not None
    now = {r["reference"]: [x["email"] for x in r["recipients"]] for r in rows}
    before = {e.account_reference: [m for _, m in e.recipients] for e in previous[1]}
    expected = sorted(a for a in set(now) | set(before)
                      if sorted(now.get(a, [])) != sorted(before.get(a, [])))
    whole = run_review.review(busy.engine, local_actor(), busy.org_id, ref)
    monkeypatch.setattr(run_review, "GROUP", 2)
    grouped = run_review.review(busy.engine, local_actor(), busy.org_id, ref)
    assert [c["account"] for c in grouped["changes"]] == expected
    assert grouped == whole and len(expected) == 6

