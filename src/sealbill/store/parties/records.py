"""Organizations, accounts, contacts and contact links: every read and write scoped by tenant.

Invariants:
- every function takes the ``org_id`` of the organization it acts for and touches no row of
  another organization (the WHERE clause of every statement names it);
- every change to a contact or a link appends a row to ``contact_events`` in the same
  transaction (who, when, how): the state at any past instant can be rebuilt from it;
- changing a contact's address returns all of its links to ``pending``: a verification is
  of an address, not of a person;
- an account's ``public_id`` is random, grants nothing by itself, and is rotatable; retired ids
  stay in ``account_public_ids`` so they answer "gone";
- every organization, contact and link row written here is sealed in the same transaction
  (:mod:`sealbill.store.parties.seals`), and every event goes through the sealed, hash-chained log
  (:mod:`sealbill.store.parties.contact_log`): the send-time guard refuses rows that were not.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.address_policy import AddressPolicy
from sealbill.store.db import Row, ids_as_one, ids_in, inserted_id, not_indexed
from sealbill.store.parties import address_rules, contact_log
from sealbill.store.parties.seals import seal_row
from sealbill.store.schema import (
    account_public_ids,
    accounts,
    contact_links,
    contacts,
    organizations,
)

ROLES = ("billing", "admin", "technical")
STATUSES = ("pending", "verified", "revoked")


class NotFound(LookupError):
    """No such row in this organization (which says nothing of other organizations)."""


def now() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    return "acc_" + secrets.token_urlsafe(18)


def create_organization(conn: Connection, **values: Any) -> int:
    values.setdefault("created_at", now())
    values.setdefault("credit_note_series", values.get("invoice_series", "F") + "AV-")
    org_id = inserted_id(conn.execute(sa.insert(organizations).values(**values)))
    seal_row(conn, "organization", org_id)
    return org_id


def update_sending_identity(conn: Connection, org_id: int, **values: Any) -> None:
    """Change the sender or archive address (the only way sealbill does it): resealed."""
    allowed = {"sender_email", "sender_name", "archive_email"}
    if not values or set(values) - allowed:
        raise ValueError(f"only {sorted(allowed)} can be changed here")
    conn.execute(sa.update(organizations).where(organizations.c.id == org_id).values(**values))
    seal_row(conn, "organization", org_id)


def organization_by_slug(conn: Connection, slug: str) -> Row:
    row = conn.execute(sa.select(organizations).where(organizations.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"organization {slug!r} does not exist (run `sealbill init`)")
    return row._mapping


def organization(conn: Connection, org_id: int) -> Row:
    row = conn.execute(sa.select(organizations).where(organizations.c.id == org_id)).first()
    if row is None:
        raise NotFound(f"organization {org_id} does not exist")
    return row._mapping


def create_account(conn: Connection, org_id: int, **values: Any) -> int:
    at = values.pop("created_at", None) or now()
    public_id = new_public_id()
    account_id = inserted_id(conn.execute(
            sa.insert(accounts).values(
                organization_id=org_id, public_id=public_id, created_at=at, **values
            )
        )
    )
    conn.execute(
        sa.insert(account_public_ids).values(
            organization_id=org_id, account_id=account_id, public_id=public_id, created_at=at
        )
    )
    return account_id


def account(conn: Connection, org_id: int, account_id: int) -> Row:
    row = conn.execute(
        sa.select(accounts).where(accounts.c.organization_id == org_id,
                                  accounts.c.id == account_id)
    ).first()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return row._mapping


def account_ids_by_reference(conn: Connection, org_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(accounts.c.reference, accounts.c.id).where(accounts.c.organization_id == org_id)
    )
    return {reference: account_id for reference, account_id in rows}


def rotate_public_id(conn: Connection, org_id: int, account_id: int, reason: str) -> str:
    """Retire the account's current public id and give it a fresh one."""
    at = now()
    fresh = new_public_id()
    conn.execute(
        sa.update(account_public_ids)
        .where(account_public_ids.c.organization_id == org_id,
               account_public_ids.c.account_id == account_id,
               account_public_ids.c.retired_at.is_(None))
        .values(retired_at=at, retired_reason=reason)
    )
    conn.execute(
        sa.insert(account_public_ids).values(
            organization_id=org_id, account_id=account_id, public_id=fresh, created_at=at
        )
    )
    conn.execute(
        sa.update(accounts)
        .where(accounts.c.organization_id == org_id, accounts.c.id == account_id)
        .values(public_id=fresh)
    )
    return fresh


@dataclass(frozen=True)
class PublicIdLookup:
    account_id: int | None
    gone: bool


def resolve_public_id(conn: Connection, org_id: int, public_id: str) -> PublicIdLookup:
    """A current id names its account; a retired one is ``gone``; anything else is unknown."""
    row = conn.execute(
        sa.select(account_public_ids.c.account_id, account_public_ids.c.retired_at).where(
            account_public_ids.c.organization_id == org_id,
            account_public_ids.c.public_id == public_id,
        )
    ).first()
    if row is None:
        return PublicIdLookup(None, gone=False)
    if row.retired_at is not None:
        return PublicIdLookup(None, gone=True)
    return PublicIdLookup(int(row.account_id), gone=False)


def _event(conn: Connection, org_id: int, contact_id: int, event: str, actor: str,
           at: datetime, **extra: Any) -> None:
    contact_log.append(conn, org_id, contact_id, event, actor, at, **extra)


def add_contact(conn: Connection, org_id: int, email: str, *, name: str = "",
                actor: str, at: datetime | None = None,
                policy: AddressPolicy | None = None) -> int:
    """Create the contact for ``email`` or return the existing one (emails are per tenant).
    A reserved or placeholder address is refused (:class:`address_rules.AddressRefused`)."""
    email = normalize_email(email)
    address_rules.check(conn, org_id, email, where=f"contact {email}: field 'email'",
                        policy=policy)
    existing = conn.execute(
        sa.select(contacts.c.id).where(contacts.c.organization_id == org_id,
                                       contacts.c.email == email)
    ).scalar()
    if existing is not None:
        return int(existing)
    at = at or now()
    contact_id = inserted_id(conn.execute(
            sa.insert(contacts).values(organization_id=org_id, email=email, name=name,
                                       created_at=at)
        )
    )
    seal_row(conn, "contact", contact_id, {"organization_id": org_id, "email": email})
    _event(conn, org_id, contact_id, "added", actor, at, new_value=email)
    return contact_id


def normalize_email(email: str) -> str:
    """Trim and lower-case the domain; refuse what cannot be one address (CR, LF, commas...)."""
    email = email.strip()
    if any(ch in email for ch in "\r\n,;<>\"' \t") or email.count("@") != 1:
        raise ValueError(f"not a single email address: {email!r}")
    local, domain = email.split("@")
    if not local or "." not in domain:
        raise ValueError(f"not a single email address: {email!r}")
    return f"{local}@{domain.lower()}"


def link_contact(conn: Connection, org_id: int, contact_id: int, account_id: int, role: str,
                 *, actor: str, at: datetime | None = None,
                 policy: AddressPolicy | None = None) -> int:
    """Link a contact to an account with a role, ``pending`` until verified."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    account(conn, org_id, account_id)  # the account must be this tenant's
    if role == "billing":
        _check_billing(conn, org_id, contact_id, account_id, policy)
    at = at or now()
    existing = conn.execute(
        sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == org_id,
            contact_links.c.contact_id == contact_id,
            contact_links.c.account_id == account_id,
            contact_links.c.role == role,
        )
    ).scalar()
    if existing is not None:
        return int(existing)
    link_id = inserted_id(conn.execute(
            sa.insert(contact_links).values(
                organization_id=org_id, contact_id=contact_id, account_id=account_id,
                role=role, status="pending", status_changed_at=at, status_changed_by=actor,
            )
        )
    )
    seal_row(conn, "link", link_id, {
        "organization_id": org_id, "contact_id": contact_id, "account_id": account_id,
        "role": role, "status": "pending", "verified_email": None, "verification_method": None,
        "verified_at": None})
    _event(conn, org_id, contact_id, "linked", actor, at, account_id=account_id, role=role)
    return link_id


def set_link_status(conn: Connection, org_id: int, link_id: int, status: str, *, actor: str,
                    method: str | None = None, reason: str | None = None,
                    at: datetime | None = None, policy: AddressPolicy | None = None) -> None:
    """Verify, revoke or reset a link; an operator verification needs a reason."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    if status == "verified" and method == "operator" and not (reason or "").strip():
        raise ValueError("an operator verification needs a recorded reason")
    at = at or now()
    row = conn.execute(
        sa.select(contact_links).where(contact_links.c.organization_id == org_id,
                                       contact_links.c.id == link_id)
    ).first()
    if row is None:
        raise NotFound(f"contact link {link_id} not found")
    # A verification is of the address the contact has now; it is sealed with the link and
    # recorded in the event, so it does not follow the contact to another address.
    email = conn.execute(sa.select(contacts.c.email).where(
        contacts.c.organization_id == org_id, contacts.c.id == row.contact_id)).scalar_one()
    if status == "verified" and row.role == "billing":
        _check_billing(conn, org_id, int(row.contact_id), int(row.account_id), policy)
    sealed = {"verification_method": method if status == "verified"
              else row.verification_method, "verified_at": at if status == "verified" else None,
              "verified_email": email if status == "verified" else None}
    conn.execute(
        sa.update(contact_links)
        .where(contact_links.c.organization_id == org_id, contact_links.c.id == link_id)
        .values(status=status, status_changed_at=at, status_changed_by=actor, reason=reason,
                **sealed)
    )
    seal_row(conn, "link", link_id, {**row._mapping, "status": status, **sealed})
    _event(conn, org_id, row.contact_id, status, actor, at, account_id=row.account_id,
           role=row.role, method=method, reason=reason,
           new_value=email if status == "verified" else None)


def change_contact_email(conn: Connection, org_id: int, contact_id: int, new_email: str, *,
                         actor: str, at: datetime | None = None) -> None:
    at = at or now()
    new_email = normalize_email(new_email)
    old = conn.execute(
        sa.select(contacts.c.email).where(contacts.c.organization_id == org_id,
                                          contacts.c.id == contact_id)
    ).scalar()
    if old is None:
        raise NotFound(f"contact {contact_id} not found")
    address_rules.check(conn, org_id, new_email, where=f"contact {contact_id}: field 'email'")
    for account_id in conn.execute(sa.select(contact_links.c.account_id).where(
            contact_links.c.organization_id == org_id, contact_links.c.contact_id == contact_id,
            contact_links.c.role == "billing")).scalars():
        address_rules.check(conn, org_id, new_email, account_id=int(account_id),
                            where=f"contact {contact_id} (billing for account {account_id}): "
                                  "field 'email'")
    conn.execute(
        sa.update(contacts).where(contacts.c.organization_id == org_id,
                                  contacts.c.id == contact_id).values(email=new_email)
    )
    seal_row(conn, "contact", contact_id, {"organization_id": org_id, "email": new_email})
    _event(conn, org_id, contact_id, "address_changed", actor, at, old_value=old,
           new_value=new_email)
    links = conn.execute(
        sa.select(contact_links.c.id).where(contact_links.c.organization_id == org_id,
                                            contact_links.c.contact_id == contact_id,
                                            contact_links.c.status == "verified")
    ).scalars().all()
    for link_id in links:
        set_link_status(conn, org_id, link_id, "pending", actor=actor,
                        reason="address changed", at=at)


def _check_billing(conn: Connection, org_id: int, contact_id: int, account_id: int,
                   policy: AddressPolicy | None = None) -> None:
    """A billing link receives invoices: its address must pass the policy for that account
    (the organization's own addresses only on an internal test account)."""
    email = conn.execute(sa.select(contacts.c.email).where(
        contacts.c.organization_id == org_id, contacts.c.id == contact_id)).scalar()
    if email is None:
        raise NotFound(f"contact {contact_id} not found")
    address_rules.check(conn, org_id, str(email), account_id=account_id, policy=policy,
                        where=f"contact {email} (billing for account {account_id}): "
                              "field 'email'")


@dataclass(frozen=True, order=True)
class Recipient:
    """A recipient resolved from a contact record — never from a bare string."""

    contact_id: int
    email: str


def verified_billing_recipients(conn: Connection, org_id: int,
                                account_id: int) -> list[Recipient]:
    """The account's verified billing contacts, read now from the database, by contact id."""
    return [r for _, r in verified_billing_recipients_many(conn, org_id, [account_id])]


def verified_billing_recipients_many(conn: Connection, org_id: int, account_ids: Sequence[int]
                                     ) -> list[tuple[int, Recipient]]:
    """(account id, recipient) for several accounts, in (account, contact) order."""
    rows = conn.execute(
        sa.select(contact_links.c.account_id, contacts.c.id, contacts.c.email)
        .join(contact_links, contact_links.c.contact_id == contacts.c.id)
        .where(
            not_indexed(contact_links.c.organization_id) == org_id,
            not_indexed(contacts.c.organization_id) == org_id,
            ids_as_one(conn, contact_links.c.account_id, account_ids),
            contact_links.c.role == "billing",
            contact_links.c.status == "verified",
            contacts.c.bounced_at.is_(None),
        )
        .order_by(contact_links.c.account_id, contacts.c.id)
    )
    return [(int(aid), Recipient(int(cid), email)) for aid, cid, email in rows]


def archived_references(conn: Connection, org_id: int) -> set[str]:
    return set(conn.execute(sa.select(accounts.c.reference).where(
        accounts.c.organization_id == org_id, accounts.c.archived_at.is_not(None))).scalars())


def archived_among(conn: Connection, org_id: int, account_ids: Collection[int]
                   ) -> dict[int, str]:
    """The archived accounts among ``account_ids`` (id -> reference), in one statement with
    one parameter whatever their number (on SQLite the ids as a JSON array)."""
    if not account_ids:
        return {}
    if conn.dialect.name == "sqlite":
        rows = conn.execute(_ARCHIVED_SQLITE, {"org": org_id, "ids": json.dumps(
            [int(i) for i in account_ids])})
    else:
        rows = conn.execute(sa.select(accounts.c.id, accounts.c.reference).where(
            accounts.c.organization_id == org_id, accounts.c.archived_at.is_not(None),
            ids_in(conn, accounts.c.id, list(account_ids))))
    return {int(account_id): str(reference) for account_id, reference in rows}


_ARCHIVED_SQLITE = sa.text(
    "SELECT id, reference FROM accounts WHERE organization_id = :org AND archived_at IS NOT "
    "NULL AND id IN (SELECT value FROM json_each(:ids))")
