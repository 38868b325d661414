"""The link facts the plan is judged on, for a group of (account, contact) pairs: whether the
contact history explains each verified billing link and its current address.

The rule is :class:`sealbill.domain.link_history.LinkHistory`'s — a link's state at ``now`` is
its last state event (``linked``, ``pending``, ``verified``, ``revoked``) at or before ``now``,
ordered by (``at``, id); a contact's address is its last ``added`` / ``address_changed`` value
at or before ``now`` — but the database picks those last events (one window query each),
so the plan reads one row per pair and per contact instead of every event of every contact
(profiled at 10,000 accounts, rebuilding the history in Python was a third of the plan
stage's CPU).

Invariants: the facts equal those computed with ``LinkHistory`` over the whole history
(``tests/integration/delivery/test_plan_links.py``, both databases); every read filters on
``organization_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.delivery_plan import LinkFact
from sealbill.domain.link_history import normalize_address
from sealbill.store.db import ids_as_one, not_indexed
from sealbill.store.schema import contact_events, contact_links, contacts

_STATES = {"linked": "pending", "pending": "pending", "verified": "verified",
           "revoked": "revoked"}  # as domain/link_history.py reads link events
_ADDRESS_EVENTS = ("added", "address_changed")
_E = contact_events


def _last(org_id: int, contact_ids: Sequence[int], conn: Connection, now: datetime,
          partition: Sequence[sa.ColumnElement[object]], *where: sa.ColumnElement[bool]
          ) -> sa.Select[Any]:
    """Per ``partition``, the latest event at or before ``now`` among those ``where`` selects:
    its columns (contact_id, account_id, event, new_value)."""
    ranked = sa.select(
        _E.c.contact_id, _E.c.account_id, _E.c.event, _E.c.new_value,
        sa.func.row_number().over(partition_by=list(partition),
                                  order_by=(_E.c.at.desc(), _E.c.id.desc())).label("rank")
    ).where(not_indexed(_E.c.organization_id) == org_id,
            ids_as_one(conn, _E.c.contact_id, contact_ids), _E.c.at <= now, *where
            ).subquery()
    return sa.select(ranked.c.contact_id, ranked.c.account_id, ranked.c.event,
                     ranked.c.new_value).where(ranked.c.rank == 1)


def link_facts(conn: Connection, org_id: int, pairs: Iterable[tuple[int, int]],
               now: datetime, name_safe: Callable[[str], bool]) -> list[LinkFact]:
    """For each (account, contact) pair, in (account, contact) order: verification time,
    whether the contact history explains the verified link and the current address, whether
    the name is header-safe."""
    pairs = sorted(set(pairs))
    if not pairs:
        return []
    contact_ids = sorted({cid for _, cid in pairs})
    states = {(account_id, contact_id): _STATES[event] for contact_id, account_id, event, _
              in conn.execute(_last(org_id, contact_ids, conn, now,
                                    (_E.c.contact_id, _E.c.account_id),
                                    _E.c.role == "billing", _E.c.account_id.is_not(None),
                                    _E.c.event.in_(tuple(_STATES))))}
    addresses = {contact_id: normalize_address(str(value)) for contact_id, _, _, value
                 in conn.execute(_last(org_id, contact_ids, conn, now, (_E.c.contact_id,),
                                       _E.c.event.in_(_ADDRESS_EVENTS),
                                       _E.c.new_value.is_not(None), _E.c.new_value != ""))}
    current = _current_links(conn, org_id, contact_ids)
    facts = []
    for account_id, contact_id in pairs:
        email, name, verified_at = current.get((account_id, contact_id), (None, "", None))
        why = _unexplained(states.get((account_id, contact_id)), addresses.get(contact_id),
                           email)
        facts.append(LinkFact(account_id, contact_id, verified_at, why == "", why,
                              bool(name_safe(name))))
    return facts


def _unexplained(state: str | None, recorded: str | None, email: str | None) -> str:
    if email is None:
        return "no verified billing link now"
    if state != "verified":
        return f"history says the link is {state or 'absent'}, the table says verified"
    if recorded is None or recorded.lower() != email.lower():
        return f"history says the address is {recorded!r}, the table says {email!r}"
    return ""


def _current_links(conn: Connection, org_id: int, contact_ids: Sequence[int]
                   ) -> dict[tuple[int, int], tuple[str, str, datetime | None]]:
    out: dict[tuple[int, int], tuple[str, str, datetime | None]] = {}
    rows = conn.execute(
        sa.select(contact_links.c.account_id, contact_links.c.contact_id, contacts.c.email,
                  contacts.c.name, contact_links.c.verified_at)
        .join(contacts, contacts.c.id == contact_links.c.contact_id)
        # the organization kept out of SQLite's index choice: with its index, each group
        # walked every contact link of the organization (quadratic in the accounts)
        .where(not_indexed(contact_links.c.organization_id) == org_id,
               not_indexed(contacts.c.organization_id) == org_id,
               ids_as_one(conn, contact_links.c.contact_id, contact_ids),
               contact_links.c.role == "billing", contact_links.c.status == "verified"))
    for account_id, contact_id, email, name, verified_at in rows:
        out[(account_id, contact_id)] = (email, name or "", verified_at)
    return out
