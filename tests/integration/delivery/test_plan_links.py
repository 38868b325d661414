"""The plan's link facts, picked by the database, equal the contact history rebuilt in Python
(``LinkHistory``), at every instant of the history, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.delivery_plan import LinkFact
from sealbill.domain.link_history import AddressEvent, LinkEvent, LinkHistory
from sealbill.pipeline.delivery.plan_judge import name_is_safe
from sealbill.store.delivery import plan_links
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_events, contact_links
from tests.integration.delivery.conftest import World
from tests.integration.delivery.test_plan_chunks import busy  # noqa: F401 - pytest fixture


def _from_history(conn: Connection, org_id: int, pairs: Sequence[tuple[int, int]],
                  now: datetime) -> list[LinkFact]:
    """The facts as the plan computed them before: every event read, the history rebuilt."""
    links, addresses = [], []
    for row in conn.execute(sa.select(contact_events).where(
            contact_events.c.organization_id == org_id)):
        if row.event in ("added", "address_changed") and row.new_value:
            addresses.append(AddressEvent(row.id, row.contact_id, row.new_value, row.at))
        elif row.account_id is not None and row.role is not None:
            links.append(LinkEvent(row.id, row.contact_id, row.account_id, row.role,
                                   row.event, row.at))
    history = LinkHistory(links, addresses)
    current = {(r.account_id, r.contact_id): r for r in conn.execute(
        sa.select(contact_links.c.account_id, contact_links.c.contact_id,
                  contact_links.c.verified_at, parties.contacts.c.email,
                  parties.contacts.c.name)
        .join(parties.contacts, parties.contacts.c.id == contact_links.c.contact_id)
        .where(contact_links.c.organization_id == org_id, contact_links.c.role == "billing",
               contact_links.c.status == "verified"))}
    facts = []
    for account_id, contact_id in sorted(set(pairs)):
        row = current.get((account_id, contact_id))
        why = ""
        if row is None:
            why = "no verified billing link now"
        elif (state := history.link_state(contact_id, account_id, "billing", now)) \
                != "verified":
            why = f"history says the link is {state or 'absent'}, the table says verified"
        else:
            recorded = history.address(contact_id, now)
            if recorded is None or recorded.lower() != row.email.lower():
                why = (f"history says the address is {recorded!r}, "
                       f"the table says {row.email!r}")
        facts.append(LinkFact(account_id, contact_id, None if row is None else row.verified_at,
                              why == "", why, name_is_safe("" if row is None else
                                                           row.name or "")))
    return facts


def test_the_link_facts_picked_by_the_database_are_those_of_the_rebuilt_history(
        busy: World) -> None:  # noqa: F811
    world = busy
    ids = world.scenario.account_ids
    with world.engine.begin() as conn:
        # more history: a link revoked then verified again, an address changed twice
        billing1 = world.scenario.contact_ids["billing1@client1.example"]
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.contact_id == billing1)).scalar_one()
        parties.set_link_status(conn, world.org_id, link, "revoked", actor="ops",
                                method="operator", reason="left")
        parties.set_link_status(conn, world.org_id, link, "verified", actor="ops",
                                method="operator", reason="back")
        billing4 = world.scenario.contact_ids["billing4@client4.example"]
        parties.change_contact_email(conn, world.org_id, billing4, "x4@Client4.EXAMPLE",
                                     actor="ops")
        parties.change_contact_email(conn, world.org_id, billing4, "y4@client4.example",
                                     actor="ops")
        assert ids
    with world.engine.connect() as conn:
        pairs = [(r.account_id, r.contact_id) for r in conn.execute(
            sa.select(contact_links.c.account_id, contact_links.c.contact_id).where(
                contact_links.c.organization_id == world.org_id))]
        moments: list[Any] = sorted(set(conn.execute(sa.select(contact_events.c.at).where(
            contact_events.c.organization_id == world.org_id)).scalars()))
        assert len(moments) > 5 and len(pairs) > 10
        tick = timedelta(microseconds=1)
        instants = {moments[0] - tick, moments[-1] + timedelta(days=1)}
        instants |= {at + delta for at in moments for delta in (-tick, timedelta(0), tick)}
        unexplained = 0
        for now in sorted(instants):
            expected = _from_history(conn, world.org_id, pairs, now)
            assert plan_links.link_facts(conn, world.org_id, pairs, now, name_is_safe) \
                == expected, now
            unexplained += sum(not fact.explained for fact in expected)
        assert unexplained  # the comparison covers unexplained links too
