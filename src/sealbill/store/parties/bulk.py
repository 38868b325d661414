"""Write many new accounts with their contacts at once: the rows and history the one-at-a-time
writers (:mod:`sealbill.store.parties.records`) would leave, in a few statements a chunk.

The accounts import (``pipeline/parties/accounts_import.py``) checks every record first, then
calls :func:`write_accounts`. Per chunk of accounts: one INSERT of the accounts (and of their
public ids), one read of the contacts that exist already, one INSERT of the new contacts, one
of the links, the seals of those rows (:func:`sealbill.store.parties.seals.seal_rows`) and one
INSERT of their history (:func:`sealbill.store.parties.contact_log.append_many`).

Invariants (what :func:`records.create_account`, :func:`records.add_contact`,
:func:`records.link_contact` and :func:`records.set_link_status` called one by one give):
- an address that exists in the organization is the same contact (emails are per tenant),
  normalized as :func:`records.normalize_email` does and refused as
  :func:`address_rules.check` refuses (:class:`address_rules.AddressRefused`, nothing written
  by this chunk);
- the same contact linked twice to an account in the same role is one link; a verification
  of a link verifies it again (an event each time, as the one-by-one path records);
- every contact and link row is sealed over its final content, and the history holds, in
  order, each contact's ``added`` (new contacts only), each link's ``linked``, and each
  verification's ``verified`` event, hash-chained as :func:`contact_log.append` chains them;
- every row is written with ``organization_id`` and the accounts are new (the caller refuses
  a reference that exists).

On PostgreSQL a large import refreshes the planner's statistics of the tables it fills
(:func:`sealbill.store.db.refresh_statistics`) each time the accounts written have doubled
and at its end, so that its own later chunks and the cycle that follows are planned for the
rows that are there (planned for empty tables, each chunk's read of the existing contacts
walked every contact of the organization: O(n^2), 4.3 s of 16.8 s of statements at 6,000
accounts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.address_policy import AddressPolicy
from sealbill.store.db import refresh_statistics
from sealbill.store.parties import contact_log, records
from sealbill.store.parties.address_rules import AddressRefused
from sealbill.store.parties.seals import seal_rows
from sealbill.store.schema import (
    account_public_ids,
    accounts,
    contact_events,
    contact_links,
    contacts,
)

CHUNK = 500  # accounts per group of statements
_FILLED = (accounts, account_public_ids, contacts, contact_links, contact_events)


@dataclass
class NewAccount:
    """An account to create (its column values) and its contacts as the import reads them:
    ``{"email", "name", "role", "verified": {"by", "reason"} | None}``."""

    values: dict[str, Any]
    contacts: Sequence[Mapping[str, Any]] = field(default_factory=list)


def write_accounts(conn: Connection, org_id: int, new: Sequence[NewAccount], *, actor: str,
                   policy: AddressPolicy, at: datetime | None = None) -> dict[str, int]:
    """Create the accounts, their contacts and links, in the caller's transaction."""
    counts = {"accounts": 0, "contacts": 0, "verified": 0}
    analyzed = 0  # accounts written when the statistics were last refreshed
    for start in range(0, len(new), CHUNK):
        chunk = new[start:start + CHUNK]
        _write_chunk(conn, org_id, chunk, actor, policy, at or records.now(), counts)
        written = start + len(chunk)
        # each time the accounts written have doubled, and at the end: the next chunks'
        # reads (the contacts that exist already) are planned for the rows now there, and
        # autovacuum cannot help: it does not see this transaction's rows
        if (written >= 2 * analyzed or written == len(new)) and refresh_statistics(
                conn, _FILLED, written):
            analyzed = written
    return counts


def _insert_returning(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]
                      ) -> list[int]:
    if not rows:
        return []
    result = conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True),
                          rows)
    return [int(i) for i in result.scalars()]


def _write_chunk(conn: Connection, org_id: int, chunk: Sequence[NewAccount], actor: str,
                 policy: AddressPolicy, at: datetime, counts: dict[str, int]) -> None:
    public_ids = [records.new_public_id() for _ in chunk]
    account_ids = _insert_returning(conn, accounts, [
        {"organization_id": org_id, "public_id": pid, "created_at": at, **item.values}
        for pid, item in zip(public_ids, chunk, strict=True)])
    conn.execute(sa.insert(account_public_ids), [
        {"organization_id": org_id, "account_id": aid, "public_id": pid, "created_at": at}
        for aid, pid in zip(account_ids, public_ids, strict=True)])
    counts["accounts"] += len(chunk)
    contact_ids, events = _contacts(conn, org_id, chunk, policy, actor, at)
    links: dict[tuple[int, int, str], dict[str, Any]] = {}
    for account_id, item in zip(account_ids, chunk, strict=True):
        internal = bool(item.values.get("is_internal_test"))
        for contact in item.contacts:
            email = records.normalize_email(str(contact["email"]))
            contact_id = contact_ids[email]
            role = str(contact.get("role", "billing"))
            if role not in records.ROLES:
                raise ValueError(f"role must be one of {records.ROLES}, not {role!r}")
            if role == "billing":  # records._check_billing: the policy for this account
                _check(policy, email, internal, f"contact {email} (billing for account "
                       f"{account_id}): field 'email'")
            key = (contact_id, account_id, role)
            if key not in links:
                links[key] = {"organization_id": org_id, "contact_id": contact_id,
                              "account_id": account_id, "role": role, "status": "pending",
                              "status_changed_at": at, "status_changed_by": actor,
                              "verification_method": None, "verified_at": None,
                              "verified_email": None, "reason": None}
                events.append(_event(org_id, contact_id, "linked", actor, at,
                                     account_id=account_id, role=role))
            counts["contacts"] += 1
            verified = contact.get("verified")
            if not verified:
                continue
            if not str(verified.get("reason") or "").strip():
                raise ValueError("an operator verification needs a recorded reason")
            links[key].update(status="verified", status_changed_at=at,
                              status_changed_by=verified["by"], verification_method="operator",
                              verified_at=at, verified_email=email, reason=verified["reason"])
            events.append(_event(org_id, contact_id, "verified", str(verified["by"]), at,
                                 account_id=account_id, role=role, method="operator",
                                 reason=verified["reason"], new_value=email))
            counts["verified"] += 1
    rows = list(links.values())
    link_ids = _insert_returning(conn, contact_links, rows)
    seal_rows(conn, "link", [(link_id, row) for link_id, row in zip(link_ids, rows,
                                                                    strict=True)])
    contact_log.append_many(conn, org_id, events)


def _contacts(conn: Connection, org_id: int, chunk: Sequence[NewAccount],
              policy: AddressPolicy, actor: str, at: datetime
              ) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Each address of the chunk -> its contact id: existing ones read, new ones inserted
    (sealed, with their ``added`` event), checked as :func:`records.add_contact` checks."""
    names: dict[str, str] = {}
    for item in chunk:
        for contact in item.contacts:
            email = records.normalize_email(str(contact["email"]))
            _check(policy, email, True, f"contact {email}: field 'email'")
            names.setdefault(email, str(contact.get("name") or ""))
    found: dict[str, int] = {}
    emails = list(names)
    for start in range(0, len(emails), CHUNK):
        found.update((str(e), int(i)) for e, i in conn.execute(
            sa.select(contacts.c.email, contacts.c.id).where(
                contacts.c.organization_id == org_id,
                contacts.c.email.in_(emails[start:start + CHUNK]))))
    fresh = [email for email in emails if email not in found]
    new_ids = _insert_returning(conn, contacts, [
        {"organization_id": org_id, "email": email, "name": names[email], "created_at": at}
        for email in fresh])
    seal_rows(conn, "contact", [(cid, {"organization_id": org_id, "email": email})
                                for cid, email in zip(new_ids, fresh, strict=True)])
    found.update(zip(fresh, new_ids, strict=True))
    events = [_event(org_id, cid, "added", actor, at, new_value=email)
              for cid, email in zip(new_ids, fresh, strict=True)]
    return found, events


def _check(policy: AddressPolicy, email: str, internal: bool, where: str) -> None:
    refusal = policy.refusal(email, internal_test=internal)
    if refusal is not None:
        raise AddressRefused(where, refusal)


def _event(org_id: int, contact_id: int, event: str, actor: str, at: datetime,
           **extra: Any) -> dict[str, Any]:
    return {"contact_id": contact_id, "event": event, "actor": actor, "at": at, **extra}
