"""Re-send to a corrected contact within the same run.

A message is accepted for one recipient and refused (550) for another; the operator corrects
that contact (new address, verified, bounce cleared); ``run retry RUN --invoice N`` queues the
message again and the next ``run send`` delivers the invoice to the new address only — never
again to the recipient (nor the archive copy) that already has it — through the guard, with a
ledger row of its own. On SQLite and PostgreSQL, against the test SMTP server.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sealbill.app import bounces
from sealbill.app import contacts as app_contacts
from sealbill.app.context import local_actor
from sealbill.pipeline.delivery import set_aside as set_asides
from sealbill.store.schema import alerts as alert_rows
from tests.integration.delivery.conftest import World
from tests.integration.delivery.test_delivery_faults import (
    BOTH,
    _add_billing_contact,
    _bounced,
    _ledger,
    _plan,
    _statuses,
    _undelivered,
    assert_delivered_once_except,
)

OLD, NEW, KEPT = "ap2@client2.example", "ap2-new@client2.example", "billing2@client2.example"


def _invoice_of(world: World) -> str:
    [missing] = _undelivered(world)
    return str(missing["invoice"])


def _correct(world: World) -> None:
    actor = local_actor()
    app_contacts.change_address(world.engine, actor, world.org_id, OLD, NEW)
    app_contacts.confirm_by_operator(world.engine, actor, world.org_id, NEW, "A0002",
                                     "new address confirmed by phone")
    bounces.clear_bounce(world.engine, actor, world.org_id, NEW,
                         {"reason": "address corrected"})
    world.entitled["A0002"] = {KEPT, NEW}


def _received(world: World, address: str, message_id: str) -> int:
    """How many times the server accepted this message for ``address``."""
    return sum(1 for m in world.smtp.accepted if m.message_id == message_id
               and address in {r.lower() for r in m.rcpt_tos})


@BOTH
def test_a_corrected_contact_gets_the_invoice_once_and_the_others_never_again(
        which: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(which)
    _add_billing_contact(world, "A0002", OLD)
    _plan(world)
    world.smtp.reject_rcpt[OLD] = f"550 5.1.1 <{OLD}>: Recipient address rejected"
    world.send()
    assert set(_statuses(world).values()) == {"sent"} and _bounced(world) == [OLD]
    number = _invoice_of(world)
    archive = (world.archive() or "").lower()
    [message_id] = [m for m, _, rs in _ledger(world) if KEPT in rs]
    before = {a: _received(world, a, message_id) for a in (KEPT, archive)}
    assert before == {KEPT: 1, archive: 1}

    with pytest.raises(set_asides.SetAsideError, match="correct the contact"):
        set_asides.retry(world.engine, world.org_id, world.run_id, number, actor="ops",
                         reason="too early")  # not corrected yet: nothing queued
    assert set(_statuses(world).values()) == {"sent"}

    _correct(world)
    done = set_asides.retry(world.engine, world.org_id, world.run_id, number, actor="ops",
                            reason="address corrected by the customer")
    assert done["queued"] == [number] and done["corrected"] == [[OLD, NEW]]
    report = world.send()
    assert report.status == "sent" and not report.violations, report

    assert _received(world, NEW, message_id) == 1
    assert {a: _received(world, a, message_id) for a in (KEPT, archive)} == before  # once
    assert _received(world, OLD, message_id) == 0
    assert_delivered_once_except(world, set())  # each entitled address once, ledger = server
    [first, again] = [r for r in _ledger(world) if {KEPT, NEW} & set(r[2])]
    assert first[0] == again[0] and first[1] < again[1]  # same message, its own ledger row
    assert again[2] == [NEW]
    assert _undelivered(world) == []  # the bounced address is resolved by its correction
    with world.engine.begin() as conn:
        causes = conn.execute(sa.select(alert_rows.c.cause)).scalars().all()
    assert "resend" in causes

    again_done = pytest.raises(set_asides.SetAsideError)
    with again_done:  # a second retry finds nothing left to correct: nothing sent twice
        set_asides.retry(world.engine, world.org_id, world.run_id, number, actor="ops",
                         reason="twice")


def test_a_contact_bounced_by_a_dsn_and_corrected_gets_the_invoice_once(world: World) -> None:
    """The relay took the message for both recipients; a DSN reports one failed later. After
    the correction the new address gets it; the one who had it, and the archive, do not."""
    from tests.integration.delivery.test_dsn_bounces import _dsn

    _add_billing_contact(world, "A0002", OLD)
    _plan(world)
    world.send()
    [message_id] = [m for m, _, rs in _ledger(world) if KEPT in rs]
    result = bounces.import_dsns(world.engine, local_actor(), world.org_id, [
        ("bounce.eml", _dsn("postfix_5xx_user_unknown.eml", message_id, OLD))])
    assert result["bounced"] == 1 and _bounced(world) == [OLD]
    number = str(result["results"][0]["invoice"])
    archive = (world.archive() or "").lower()
    before = {a: _received(world, a, message_id) for a in (KEPT, OLD, archive)}
    assert before == {KEPT: 1, OLD: 1, archive: 1}

    _correct(world)
    done = set_asides.retry(world.engine, world.org_id, world.run_id, number, actor="ops",
                            reason="address corrected after the DSN")
    assert done["corrected"] == [[OLD, NEW]]
    assert world.send().status == "sent"
    assert _received(world, NEW, message_id) == 1
    assert {a: _received(world, a, message_id) for a in (KEPT, OLD, archive)} == before
    assert [rs for m, _, rs in _ledger(world) if m == message_id][-1] == [NEW]
    assert _undelivered(world) == []
