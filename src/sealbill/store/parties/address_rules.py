"""The organization's address policy, read from its row, and the refusal every writer raises.

Invariant: every path that stores an address a message may go to (a contact added or changed,
a billing link created or verified, the accounts import, the start of a verification, the
organization's archive address) asks :func:`check` first and writes nothing when refused; the
refusal names the record and the field.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.address_policy import AddressPolicy, Refusal
from sealbill.store.schema import accounts, organizations


class AddressRefused(ValueError):
    """An address that may not receive invoices (the message names the record and field)."""

    def __init__(self, where: str, refusal: Refusal) -> None:
        super().__init__(f"{where}: {refusal.address!r} refused ({refusal.kind}): "
                         f"{refusal.reason}")
        self.refusal = refusal


def policy_for(conn: Connection, org_id: int) -> AddressPolicy:
    row = conn.execute(sa.select(organizations).where(organizations.c.id == org_id)).first()
    if row is None:
        raise LookupError(f"organization {org_id} does not exist")
    return AddressPolicy.for_organization(dict(row._mapping))


def is_internal_test(conn: Connection, org_id: int, account_id: int) -> bool:
    return bool(conn.execute(sa.select(accounts.c.is_internal_test).where(
        accounts.c.organization_id == org_id, accounts.c.id == account_id)).scalar())


def check(conn: Connection, org_id: int, address: str, *, where: str,
          account_id: int | None = None, archive: bool = False,
          policy: AddressPolicy | None = None) -> None:
    """Raise :class:`AddressRefused` unless ``address`` may receive. Without ``account_id``
    the own-address rule waits for the link (it depends on the account)."""
    policy = policy or policy_for(conn, org_id)
    internal = True if account_id is None else is_internal_test(conn, org_id, account_id)
    refusal = policy.refusal(address, internal_test=internal, archive=archive)
    if refusal is not None:
        raise AddressRefused(where, refusal)
