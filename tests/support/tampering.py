"""Raw database edits of the kinds a migration script, a bad admin query or a faulty import
makes — the tampering corpus of issue 11. Each takes a connection, the organization and a
Hypothesis ``draw`` that picks which rows and how many; each writes with plain SQL, never
through sealbill, and returns a short description of what it did.

The ground truth they are judged against is fixed before any edit (who was verified, through
sealbill, for which account): see ``tests/integration/delivery/test_tampering_corpus.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from sealbill.domain.seals import event_hash
from sealbill.store.schema import contact_events, contact_links, contacts, organizations

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _links(conn: Connection, org: int, *, role: str = "billing",
           status: str | None = "verified") -> list[Any]:
    query = sa.select(contact_links).where(contact_links.c.organization_id == org,
                                           contact_links.c.role == role)
    if status is not None:
        query = query.where(contact_links.c.status == status)
    return list(conn.execute(query.order_by(contact_links.c.id)))


def _email(conn: Connection, contact_id: int) -> str:
    return str(conn.execute(sa.select(contacts.c.email).where(contacts.c.id == contact_id))
               .scalar_one())


def _pick(draw: Draw, rows: list[Any], least: int = 1) -> list[Any]:
    size = draw(st.integers(min_value=least, max_value=len(rows)))
    return list(draw(st.permutations(rows)))[:size]


def exchange_addresses(conn: Connection, org: int, draw: Draw) -> str:
    """The addresses of k billing contacts rotated among them, flags and seals untouched."""
    chosen = _pick(draw, _links(conn, org), 2)
    ids = [int(r.contact_id) for r in chosen]
    emails = [_email(conn, c) for c in ids]
    for cid in ids:  # free the unique (org, email) first
        conn.execute(sa.update(contacts).where(contacts.c.id == cid)
                     .values(email=f"tmp-{cid}@swap.invalid"))
    for cid, email in zip(ids, emails[1:] + emails[:1], strict=True):
        conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(email=email))
    return f"rotated addresses of contacts {ids}"


def copy_seals_with_addresses(conn: Connection, org: int, draw: Draw) -> str:
    """Addresses exchanged *with* their seal columns (seal copied from another row)."""
    chosen = _pick(draw, _links(conn, org), 2)
    rows = [conn.execute(sa.select(contacts).where(contacts.c.id == r.contact_id)).one()
            for r in chosen]
    for row in rows:
        conn.execute(sa.update(contacts).where(contacts.c.id == row.id)
                     .values(email=f"tmp-{row.id}@swap.invalid"))
    for row, other in zip(rows, rows[1:] + rows[:1], strict=True):
        conn.execute(sa.update(contacts).where(contacts.c.id == row.id).values(
            email=other.email, seal=other.seal, seal_key_id=other.seal_key_id))
    return f"exchanged addresses and seals of contacts {[r.id for r in rows]}"


def repoint_links(conn: Connection, org: int, draw: Draw) -> str:
    """Verified billing links re-pointed: k of them rotated among their accounts (each
    account keeps a contact, so every invoice still renders), with a plausible history row
    written alongside each (a correct hash, a seal copied from the head)."""
    chosen = _pick(draw, _links(conn, org), 2)
    targets = [int(r.account_id) for r in chosen]
    for link, target in zip(chosen, targets[1:] + targets[:1], strict=True):
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link.id)
                     .values(account_id=target))
        _forge_event(conn, org, int(link.contact_id), target, "verified",
                     _email(conn, int(link.contact_id)))
    return f"re-pointed links {[r.id for r in chosen]}"


def fan_in(conn: Connection, org: int, draw: Draw) -> str:
    """One contact linked, verified, to many accounts (seal copied from its own link)."""
    links = _links(conn, org)
    source = draw(st.sampled_from(links))
    accounts = sorted({int(r.account_id) for r in links} - {int(source.account_id)})
    targets = _pick(draw, [a for a in accounts], 1)
    for account_id in targets:
        _insert_link(conn, org, int(source.contact_id), account_id, copy_from=source)
    return f"contact {source.contact_id} linked to accounts {targets}"


def fan_out(conn: Connection, org: int, draw: Draw) -> str:
    """An outside address added as a verified billing contact of k accounts, with a
    history row that looks like sealbill's."""
    links = _links(conn, org)
    accounts = _pick(draw, sorted({int(r.account_id) for r in links}), 1)
    outsider = draw(st.sampled_from(["attacker@evil-corp.com", "billing@localhost",
                                     "test@example.com", "factures@acme-cloud.example"]))
    contact_id = _insert_contact(conn, org, outsider, copy_seal_from=int(links[0].contact_id))
    for account_id in accounts:
        _insert_link(conn, org, contact_id, account_id, copy_from=links[0])
        _forge_event(conn, org, contact_id, account_id, "verified", outsider)
    return f"{outsider} added to accounts {accounts}"


def placeholder_or_own_address(conn: Connection, org: int, draw: Draw) -> str:
    """A verified contact's address replaced by a placeholder or the organization's own."""
    own = str(conn.execute(sa.select(organizations.c.sender_email)
                           .where(organizations.c.id == org)).scalar_one())
    chosen = _pick(draw, _links(conn, org), 1)[:2]
    addresses = ["test@example.com", "billing@localhost", own]
    done = []
    for link, address in zip(chosen, draw(st.permutations(addresses)), strict=False):
        conn.execute(sa.update(contacts).where(contacts.c.id == link.contact_id)
                     .values(email=address))
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link.id)
                     .values(verified_email=address))
        done.append(address)
    return f"addresses replaced by {done}"


def archive_address(conn: Connection, org: int, draw: Draw) -> str:
    """The organization's archive copy pointed elsewhere (seal left, or copied nowhere)."""
    address = draw(st.sampled_from(["archive@evil-corp.com", "billing1@client1.example"]))
    conn.execute(sa.update(organizations).where(organizations.c.id == org)
                 .values(archive_email=address))
    return f"archive address set to {address}"


def role_flip(conn: Connection, org: int, draw: Draw) -> str:
    """Admin links turned into verified billing links (seal copied from a real one)."""
    admins = _links(conn, org, role="admin", status=None)
    model = _links(conn, org)[0]
    chosen = _pick(draw, admins, 1)
    for link in chosen:
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link.id).values(
            role="billing", status="verified", verification_method="operator",
            verified_at=model.verified_at, verified_email=_email(conn, int(link.contact_id)),
            seal=model.seal, seal_key_id=model.seal_key_id))
    return f"admin links {[r.id for r in chosen]} flipped to billing"


def copy_verification(conn: Connection, org: int, draw: Draw) -> str:
    """The verification of one contact copied onto another's pending link (every column,
    seal included)."""
    pending = _links(conn, org, status="pending")
    verified = _links(conn, org)
    chosen = _pick(draw, pending, 1)
    for link in chosen:
        model = draw(st.sampled_from(verified))
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link.id).values(
            status="verified", verification_method=model.verification_method,
            verified_at=model.verified_at, verified_email=_email(conn, int(link.contact_id)),
            status_changed_by=model.status_changed_by, seal=model.seal,
            seal_key_id=model.seal_key_id))
    return f"verification copied onto pending links {[r.id for r in chosen]}"


def forge_history(conn: Connection, org: int, draw: Draw) -> str:
    """Pending links made verified, each with a chained history row whose hash is right
    (the algorithm is public) and whose seal is copied from a real event."""
    chosen = _pick(draw, _links(conn, org, status="pending"), 1)
    for link in chosen:
        email = _email(conn, int(link.contact_id))
        conn.execute(sa.update(contact_links).where(contact_links.c.id == link.id).values(
            status="verified", verification_method="email_token",
            verified_at=datetime.now(UTC), verified_email=email))
        _forge_event(conn, org, int(link.contact_id), int(link.account_id), "verified", email)
    return f"history forged for links {[r.id for r in chosen]}"


def delete_and_reinsert(conn: Connection, org: int, draw: Draw) -> str:
    """A verified link deleted and written back pointing at another contact, its old seal
    kept (the row's id, seal and verification unchanged)."""
    links = _links(conn, org)
    chosen = _pick(draw, links, 1)
    others = _links(conn, org, status="pending") or links
    for link in chosen:
        stranger = draw(st.sampled_from([r for r in others if r.contact_id != link.contact_id]))
        values = dict(link._mapping)
        conn.execute(sa.delete(contact_links).where(contact_links.c.id == link.id))
        values["contact_id"] = stranger.contact_id
        values["verified_email"] = _email(conn, int(stranger.contact_id))
        conn.execute(sa.delete(contact_links).where(contact_links.c.id == stranger.id))
        conn.execute(sa.insert(contact_links).values(**values))
    return f"links {[r.id for r in chosen]} re-inserted for other contacts"


def _insert_contact(conn: Connection, org: int, email: str, *, copy_seal_from: int) -> int:
    model = conn.execute(sa.select(contacts).where(contacts.c.id == copy_seal_from)).one()
    existing = conn.execute(sa.select(contacts.c.id).where(
        contacts.c.organization_id == org, contacts.c.email == email)).scalar()
    if existing is not None:
        return int(existing)
    result = conn.execute(sa.insert(contacts).values(
        organization_id=org, email=email, name="", created_at=datetime.now(UTC),
        seal=model.seal, seal_key_id=model.seal_key_id))
    return int(result.inserted_primary_key[0])


def _insert_link(conn: Connection, org: int, contact_id: int, account_id: int, *,
                 copy_from: Any) -> None:
    exists = conn.execute(sa.select(contact_links.c.id).where(
        contact_links.c.contact_id == contact_id, contact_links.c.account_id == account_id,
        contact_links.c.role == "billing")).scalar()
    if exists is not None:
        return
    conn.execute(sa.insert(contact_links).values(
        organization_id=org, contact_id=contact_id, account_id=account_id, role="billing",
        status="verified", status_changed_at=copy_from.status_changed_at,
        status_changed_by="operator", verification_method="operator",
        verified_at=copy_from.verified_at, verified_email=_email(conn, contact_id),
        seal=copy_from.seal, seal_key_id=copy_from.seal_key_id))


def _forge_event(conn: Connection, org: int, contact_id: int, account_id: int, event: str,
                 email: str) -> None:
    """A history row appended at the chain's head with a correct hash; its seal is copied
    from the head row (the forger has no key)."""
    head = conn.execute(sa.select(contact_events).where(
        contact_events.c.organization_id == org, contact_events.c.seq.is_not(None))
        .order_by(contact_events.c.seq.desc()).limit(1)).one()
    row: dict[str, Any] = {
        "organization_id": org, "seq": int(head.seq) + 1, "contact_id": contact_id,
        "account_id": account_id, "role": "billing", "event": event, "actor": "operator",
        "method": "operator", "reason": "migration", "old_value": None, "new_value": email,
        "at": datetime.now(UTC), "prev_hash": head.row_hash}
    row["row_hash"] = event_hash(row)
    conn.execute(sa.insert(contact_events).values(
        **row, seal=hashlib.sha256(b"forged" + row["row_hash"].encode()).hexdigest(),
        seal_key_id=head.seal_key_id))


CORPUS: dict[str, Callable[[Connection, int, Draw], str]] = {
    "exchange_addresses": exchange_addresses,
    "seal_copied_with_address": copy_seals_with_addresses,
    "repoint_links_with_history": repoint_links,
    "fan_in": fan_in,
    "fan_out_outsider": fan_out,
    "placeholder_or_own_address": placeholder_or_own_address,
    "archive_address": archive_address,
    "role_flip": role_flip,
    "verification_copied": copy_verification,
    "history_forged": forge_history,
    "deleted_and_reinserted": delete_and_reinsert,
}
