"""What the seals say, for a person to read: per recipient of a planned message, and per row of
a contact's history.

The same checks as the guard's seal rule (:mod:`sealbill.domain.seal_guard`, rows read by
:mod:`sealbill.store.delivery.seal_facts`), run on the rows as they are now, so the held-run screen
shows
what the send would find: ``sealed`` True only when the contact, its billing link and the
link's latest history event all verify for that address. Reading only; a missing keyring is
reported as a failing seal, never answered by making a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import ids
from sealbill.app.accounts import account_row
from sealbill.app.context import READ, Actor
from sealbill.domain import seal_guard
from sealbill.domain.seals import Check, Keys, check_event, check_row
from sealbill.keys import KeyMissing, for_connection, refresh
from sealbill.store.delivery import seal_facts
from sealbill.store.schema import contact_events, contact_links, contacts


def _keys(conn: Connection, wanted: set[str]) -> Keys:
    keys = for_connection(conn).keys
    if not wanted <= set(keys.by_id):
        keys = refresh(conn).keys  # rotated by another process since this one loaded it
    return keys


def recipients(conn: Connection, org_id: int, account_id: int,
               planned: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    """Per planned recipient (contact id, address): ``{"email", "sealed", "problems"}``."""
    try:
        evidence = seal_facts.evidence(conn, org_id, account_id, [c for c, _ in planned])
        keys = _keys(conn, seal_guard.key_ids(evidence))
    except KeyMissing as exc:
        return [{"email": email, "sealed": False, "problems": [str(exc)]}
                for _, email in planned]
    out = []
    for contact_id, email in planned:
        rows = evidence.recipients.get(contact_id,
                                       seal_guard.RecipientRows(None, None, None))
        problems = seal_guard.recipient_problems(keys, account_id, email, rows)
        out.append({"email": email, "sealed": not problems, "problems": problems})
    return out


def rows(conn: Connection, kinds_and_rows: Iterable[tuple[str, Mapping[Any, Any]]]
         ) -> list[str]:
    """The seal check of each stored row (``contact``, ``link`` or ``event``), in order:
    ``valid``, ``missing``, ``unknown_key`` or ``mismatch``."""
    items = list(kinds_and_rows)
    try:
        keys = _keys(conn, {str(r["seal_key_id"]) for _, r in items if r.get("seal_key_id")})
    except KeyMissing:
        return [Check.UNKNOWN_KEY.value for _ in items]
    return [(check_event(keys, row) if kind == "event" else check_row(keys, kind, row)).value
            for kind, row in items]


def account_contacts(engine: Engine, actor: Actor, org_id: int, account_ref: str
                     ) -> dict[str, dict[str, Any]]:
    """The seal check of each contact of the account (by public id): its row, its links on
    this account (by role) and every event of its history, in the order
    :func:`sealbill.app.contacts.view` lists them (time, then id)."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        account = account_row(conn, org_id, account_ref)
        links = conn.execute(sa.select(contact_links).where(
            contact_links.c.organization_id == org_id,
            contact_links.c.account_id == account["id"])).all()
        out: dict[str, dict[str, Any]] = {}
        for contact_id in sorted({int(link.contact_id) for link in links}):
            contact = conn.execute(sa.select(contacts).where(
                contacts.c.id == contact_id)).one()._mapping
            own = [link._mapping for link in links if int(link.contact_id) == contact_id]
            events = [e._mapping for e in conn.execute(sa.select(contact_events).where(
                contact_events.c.organization_id == org_id,
                contact_events.c.contact_id == contact_id)
                .order_by(contact_events.c.at, contact_events.c.id)).all()]
            checks = rows(conn, [("contact", contact), *(("link", link) for link in own),
                                 *(("event", e) for e in events)])
            out[ids.encode(conn, org_id, "contact", contact_id)] = {
                "contact": checks[0],
                "links": {str(link["role"]): c
                          for link, c in zip(own, checks[1:1 + len(own)], strict=True)
                          if link["status"] != "revoked"},
                "events": checks[1 + len(own):]}
    return out
