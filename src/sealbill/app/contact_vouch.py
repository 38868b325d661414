"""An operator vouches for a billing contact without a code: how the address was checked
(the method) and what shows it (the evidence) are recorded with the verification.

The same use case as ``sealbill contacts vouch`` (:func:`sealbill.app.contacts.
confirm_by_operator`: the link verified with method ``operator``, its history, the audit entry
and the ``contact.verified`` webhook in one transaction); the recorded reason is
``<method>: <evidence>``.

Invariants: vouching replaces the customer's own confirmation, so it needs both the right to
edit accounts and the right to approve runs (``accounts.write`` and ``runs.approve``: today
the ``admin`` role), and it takes a second person: an operator never vouches for an address
they added, changed or linked to this account themselves; the method is one of
:data:`METHODS`; the evidence is at least ten characters; a refusal writes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import contacts
from sealbill.app.accounts import account_row
from sealbill.app.context import ACCOUNTS_WRITE, RUNS_APPROVE, Actor
from sealbill.app.errors import Forbidden, Invalid, Problem
from sealbill.store.schema import contact_events

METHODS = ("phone", "in_person", "signed_letter", "known_channel", "other")


def vouch(engine: Engine, actor: Actor, org_id: int, contact_ref: str, account_ref: str, *,
          method: str, evidence: str) -> dict[str, Any]:
    actor.require(ACCOUNTS_WRITE)
    actor.require(RUNS_APPROVE)
    actor.require_org(org_id)
    with engine.begin() as conn:  # unknown contact or account: not found, before any input
        contact = contacts.contact_row(conn, org_id, contact_ref)
        account = account_row(conn, org_id, account_ref)
        last = conn.execute(sa.select(contact_events.c.actor).where(
            contact_events.c.organization_id == org_id,
            contact_events.c.contact_id == contact["id"],
            sa.or_(contact_events.c.event.in_(("added", "address_changed")),
                   sa.and_(contact_events.c.event == "linked",
                           contact_events.c.account_id == account["id"])))
            .order_by(contact_events.c.id.desc()).limit(1)).scalar()
    problems = []
    if method not in METHODS:
        problems.append(Problem("method", f"choose one of {', '.join(METHODS)}"))
    if len(evidence.strip()) < 10:
        problems.append(Problem("evidence", "say what shows the address is right "
                                            "(at least 10 characters)"))
    if problems:
        raise Invalid(f"vouching: {len(problems)} problem(s); nothing was written", problems)
    if last == actor.name:
        raise Forbidden("another operator must vouch for an address you added, changed or "
                        "linked yourself")
    return contacts.confirm_by_operator(engine, actor, org_id, contact_ref, account_ref,
                                        f"{method}: {evidence.strip()}"[:500])
