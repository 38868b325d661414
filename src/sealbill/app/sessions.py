"""Interactive sign-in (for the web console): an operator's role per organization, and
server-side sessions opened by password + TOTP.

Invariants: a session acts as ``operator:<email>`` — the same identity as the operator's API
keys, so the four-eyes rule holds across the CLI, the API and the console; it is scoped to one
organization with the role granted there; only the token's SHA-256 is stored; a session ends
at its expiry, when ended, or when the operator is disabled or the role revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit
from sealbill.app.common import org_id_by_slug
from sealbill.app.context import ORG_WRITE, ROLES, Actor
from sealbill.app.errors import Invalid, NotFound, Problem, Unauthenticated
from sealbill.app.operators import login
from sealbill.store.db import read_transaction
from sealbill.store.parties import records as parties
from sealbill.store.schema import operator_roles, operator_sessions, operators

LIFETIME = timedelta(hours=12)


def grant(engine: Engine, actor: Actor, org_id: int, operator_email: str, role: str
          ) -> dict[str, Any]:
    """Give an operator a role in the organization (replacing the previous one)."""
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    if role not in ROLES:
        raise Invalid("role: 1 problem(s)", [Problem("role", f"one of {', '.join(ROLES)}")])
    with engine.begin() as conn:
        operator = conn.execute(sa.select(operators.c.id).where(
            operators.c.email == parties.normalize_email(operator_email))).scalar()
        if operator is None:
            raise NotFound(f"operator {operator_email!r} not found")
        before = conn.execute(sa.select(operator_roles.c.role).where(
            operator_roles.c.operator_id == operator,
            operator_roles.c.organization_id == org_id)).scalar()
        conn.execute(sa.delete(operator_roles).where(operator_roles.c.operator_id == operator,
                                                     operator_roles.c.organization_id == org_id))
        conn.execute(sa.insert(operator_roles).values(
            operator_id=operator, organization_id=org_id, role=role,
            granted_at=datetime.now(UTC)))
        audit.record(conn, actor, org_id, "operator.grant", "operator", operator_email,
                     before={"role": before}, after={"role": role})
    return {"operator": operator_email, "role": role}


def sign_in(engine: Engine, email: str, password: str, totp: str, org_slug: str
            ) -> tuple[str, Actor]:
    """Password + TOTP, then a session in the organization where the operator has a role;
    returns (token for the cookie, actor). Every refusal says the same thing."""
    who = login(engine, email, password, totp)
    refused = Unauthenticated("wrong e-mail, password or code")
    with engine.begin() as conn:
        try:
            org_id = org_id_by_slug(conn, Actor("system", "read-only"), org_slug)
        except NotFound:
            raise refused from None
        role = conn.execute(sa.select(operator_roles.c.role).where(
            operator_roles.c.operator_id == who["operator_id"],
            operator_roles.c.organization_id == org_id)).scalar()
        if role is None:
            raise refused
        token = "sbs_" + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        conn.execute(sa.insert(operator_sessions).values(
            operator_id=who["operator_id"], organization_id=org_id,
            token_sha256=hashlib.sha256(token.encode()).hexdigest(), created_at=now,
            expires_at=now + LIFETIME))
        actor = Actor(f"operator:{who['email']}", str(role), org_id, who["operator_id"],
                      key_prefix=f"session:{token[4:12]}", channel="web")
        audit.record(conn, actor, org_id, "session.start", "operator", who["email"])
    return token, actor


def session_actor(engine: Engine, token: str) -> Actor:
    """The actor of a live session; Unauthenticated otherwise (expired, ended, revoked)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    with read_transaction(engine) as conn:
        row = conn.execute(
            sa.select(operator_sessions, operators.c.email, operators.c.disabled_at,
                      operator_roles.c.role)
            .join(operators, operators.c.id == operator_sessions.c.operator_id)
            .outerjoin(operator_roles, sa.and_(
                operator_roles.c.operator_id == operator_sessions.c.operator_id,
                operator_roles.c.organization_id == operator_sessions.c.organization_id))
            .where(operator_sessions.c.token_sha256 == digest)).first()
    if row is None or row.ended_at is not None or row.disabled_at is not None or \
            row.role is None or row.expires_at <= datetime.now(UTC):
        raise Unauthenticated("the session has ended; sign in again")
    return Actor(f"operator:{row.email}", row.role, int(row.organization_id),
                 int(row.operator_id), key_prefix=f"session:{token[4:12]}", channel="web")


def sign_out(engine: Engine, token: str) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with engine.begin() as conn:
        conn.execute(sa.update(operator_sessions).where(
            operator_sessions.c.token_sha256 == digest,
            operator_sessions.c.ended_at.is_(None)).values(ended_at=datetime.now(UTC)))
