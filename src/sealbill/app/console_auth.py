"""Signing in to the web console: who an operator is, in which organization, with which role.

An operator has no role of their own: roles belong to API keys, each scoped to one organization
(:mod:`sealbill.app.operators`). The console grants an operator, in an organization, the role of
their unrevoked key there (the first in :data:`~sealbill.app.context.ROLES` order when they hold
several), so the console never grants more than the API would.

Invariants: a sign-in needs the password *and* a current TOTP code; the answer is the same
whether the e-mail, the password, the code or the organization is wrong; the role is read again
on every request (:func:`console_actor`), so revoking the key or disabling the operator ends
console access at the next click. The console's actor is ``operator:<email>``, the same identity
as the operator's API keys: four-eyes holds across the CLI, the API and the console.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import operators
from sealbill.app.context import ROLES, Actor
from sealbill.app.errors import Unauthenticated
from sealbill.store import parties
from sealbill.store.schema import api_keys
from sealbill.store.schema import operators as operators_table

REFUSED = "wrong e-mail, password, code or organization"


@dataclass(frozen=True)
class ConsoleIdentity:
    operator_id: int
    email: str
    name: str
    org_id: int
    role: str


def _role(engine: Engine, operator_id: int, org_id: int) -> str | None:
    with engine.begin() as conn:
        roles = set(conn.execute(sa.select(api_keys.c.role).where(
            api_keys.c.operator_id == operator_id, api_keys.c.organization_id == org_id,
            api_keys.c.revoked_at.is_(None))).scalars())
    return next((r for r in ROLES if r in roles), None)


def sign_in(engine: Engine, email: str, password: str, totp_code: str, org_slug: str
            ) -> ConsoleIdentity:
    """Password + TOTP + an organization where the operator holds a key; else Unauthenticated."""
    try:
        who = operators.login(engine, email, password, totp_code)
    except Unauthenticated:
        raise Unauthenticated(REFUSED) from None
    with engine.begin() as conn:
        try:
            org_id = int(parties.organization_by_slug(conn, org_slug.strip())["id"])
        except parties.NotFound:
            raise Unauthenticated(REFUSED) from None
    role = _role(engine, who["operator_id"], org_id)
    if role is None:
        raise Unauthenticated(REFUSED)
    return ConsoleIdentity(who["operator_id"], who["email"], who["name"], org_id, role)


def console_actor(engine: Engine, operator_id: int, org_id: int) -> Actor:
    """The actor of a console session now (Unauthenticated when access was withdrawn)."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(operators_table.c.email, operators_table.c.disabled_at)
                           .where(operators_table.c.id == operator_id)).first()
    role = None if row is None or row.disabled_at is not None else _role(
        engine, operator_id, org_id)
    if row is None or role is None:
        raise Unauthenticated("this console session is no longer valid; sign in again")
    return Actor(name=f"operator:{row.email}", role=role, org_id=org_id,
                 operator_id=operator_id, channel="web")
