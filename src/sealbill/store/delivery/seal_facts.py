"""Read, in the claiming transaction, the rows the seal rule judges (``domain/seal_guard.py``).

For one message: the organization's row, and per envelope recipient its contact row, its
billing link to the envelope's account, and the latest chained link event of that link.
Every read is by primary key or by contact (indexed), whatever the size of the run; the
statements are built once per recipient count and prepared
(:mod:`sealbill.store.delivery.prepared`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.seal_guard import RecipientRows, SealEvidence
from sealbill.store.db import not_indexed
from sealbill.store.delivery.prepared import IdsCondition, Prepared, PreparedIds
from sealbill.store.parties.contact_log import LINK_EVENTS
from sealbill.store.schema import contact_events, contact_links, contacts, organizations

_P = sa.bindparam
_ORG = Prepared(sa.select(organizations.c.id, organizations.c.slug,
                          organizations.c.sender_email, organizations.c.sender_name,
                          organizations.c.archive_email, organizations.c.seal,
                          organizations.c.seal_key_id)
                .where(organizations.c.id == _P("org")))


@lru_cache(maxsize=16)
def _per_contact(count: int) -> tuple[Prepared, Prepared]:
    ids: list[Any] = [_P(f"c{i}", type_=contacts.c.id.type) for i in range(count)]
    rows = Prepared(
        sa.select(contacts.c.id.label("cid"), contacts.c.organization_id.label("c_org"),
                  contacts.c.email.label("c_email"), contacts.c.seal.label("c_seal"),
                  contacts.c.seal_key_id.label("c_kid"), contact_links)
        .select_from(contacts.outerjoin(contact_links, sa.and_(
            contact_links.c.contact_id == contacts.c.id,
            contact_links.c.account_id == _P("account"), contact_links.c.role == "billing")))
        .where(contacts.c.organization_id == _P("org"), contacts.c.id.in_(ids)))
    # The organization is kept out of SQLite's index choice: with (organization, seq) it
    # walked the organization's whole history for every message (20 ms at 10,000 events).
    latest = (sa.select(contact_events)
              .where(contact_events.c.contact_id.in_(ids),
                     not_indexed(contact_events.c.organization_id) == _P("org"),
                     contact_events.c.account_id == _P("account"),
                     contact_events.c.role == "billing",
                     contact_events.c.event.in_([sa.literal(e) for e in LINK_EVENTS]),
                     contact_events.c.seq.is_not(None)))
    ranked = latest.add_columns(sa.func.row_number().over(
        partition_by=contact_events.c.contact_id,
        order_by=contact_events.c.seq.desc()).label("rank")).subquery()
    events = Prepared(sa.select(ranked).where(ranked.c.rank == 1))
    return rows, events


def evidence(conn: Connection, org_id: int, account_id: int,
             contact_ids: Sequence[int]) -> SealEvidence:
    org = _ORG.first(conn, {"org": org_id})
    ids = list(contact_ids) or [-1]
    params: dict[str, Any] = {"org": org_id, "account": account_id,
                              **{f"c{i}": cid for i, cid in enumerate(ids)}}
    rows_read, events_read = _per_contact(len(ids))
    contact: dict[int, dict[str, Any]] = {}
    link: dict[int, dict[str, Any]] = {}
    for row in rows_read.rows(conn, params):
        m = row._asdict()
        cid = int(m["cid"])
        contact[cid] = {"id": cid, "organization_id": m["c_org"], "email": m["c_email"],
                        "seal": m["c_seal"], "seal_key_id": m["c_kid"]}
        if m["id"] is not None:
            link[cid] = {c.name: m[c.name] for c in contact_links.columns}
    event = {int(r.contact_id): r._asdict() for r in events_read.rows(conn, params)}
    return SealEvidence(
        organization=None if org is None else org._asdict(),
        recipients={cid: RecipientRows(contact.get(cid), link.get(cid), event.get(cid))
                    for cid in contact_ids})


def _batch_contacts(ids: IdsCondition) -> Any:
    return sa.select(contacts.c.id, contacts.c.organization_id, contacts.c.email,
                     contacts.c.seal, contacts.c.seal_key_id).where(
        contacts.c.organization_id == _P("org"), ids(contacts.c.id, "contacts"))


def _batch_links(ids: IdsCondition) -> Any:
    # by contact only: with both lists on the (contact, account, role) index SQLite probed
    # every pair of the two lists (100 x 100 a batch); a contact has few links
    return sa.select(contact_links).where(
        ids(contact_links.c.contact_id, "contacts"),
        ids(not_indexed(contact_links.c.account_id), "accounts"),
        contact_links.c.role == "billing")


def _batch_events(ids: IdsCondition) -> Any:
    latest = (sa.select(contact_events)
              .where(ids(contact_events.c.contact_id, "contacts"),
                     not_indexed(contact_events.c.organization_id) == _P("org"),
                     ids(contact_events.c.account_id, "accounts"),
                     contact_events.c.role == "billing",
                     contact_events.c.event.in_([sa.literal(e) for e in LINK_EVENTS]),
                     contact_events.c.seq.is_not(None)))
    ranked = latest.add_columns(sa.func.row_number().over(
        partition_by=(contact_events.c.contact_id, contact_events.c.account_id),
        order_by=contact_events.c.seq.desc()).label("rank")).subquery()
    return sa.select(ranked).where(ranked.c.rank == 1)


# the batch's three reads, prepared (one statement each whatever the batch: the id lists are
# one parameter each); the values go through their column types as in ``conn.execute``
_CONTACTS = PreparedIds(_batch_contacts, ["contacts"])
_LINKS = PreparedIds(_batch_links, ["contacts", "accounts"])
_EVENTS = PreparedIds(_batch_events, ["contacts", "accounts"])


def evidence_many(conn: Connection, org_id: int,
                  wanted: Sequence[tuple[int, Sequence[int]]]) -> list[SealEvidence]:
    """:func:`evidence` for each (account id, contact ids) of ``wanted``, in that order — the
    same rows, read for a sender's whole batch in four prepared statements (the organization,
    the contacts, their billing links to those accounts, each link's latest chained event)."""
    org = _ORG.first(conn, {"org": org_id})
    organization = None if org is None else org._asdict()
    params = {"org": org_id,
              "contacts": sorted({cid for _, ids in wanted for cid in ids}) or [-1],
              "accounts": sorted({account for account, _ in wanted}) or [-1]}
    contact: dict[int, dict[str, Any]] = {
        int(r.id): {"id": int(r.id), "organization_id": r.organization_id, "email": r.email,
                    "seal": r.seal, "seal_key_id": r.seal_key_id}
        for r in _CONTACTS.rows(conn, params)}
    link = {(int(r.contact_id), int(r.account_id)): r._asdict()
            for r in _LINKS.rows(conn, params)}
    event = {(int(r.contact_id), int(r.account_id)): r._asdict()
             for r in _EVENTS.rows(conn, params)}
    return [SealEvidence(
        organization=organization,
        recipients={cid: RecipientRows(contact.get(cid),
                                       link.get((cid, account)) if cid in contact else None,
                                       event.get((cid, account)))
                    for cid in ids})
        for account, ids in wanted]
