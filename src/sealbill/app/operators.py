"""Operators (people) and their API keys.

Invariants: a password is stored only as an argon2id hash and a key only as the SHA-256 of its
secret (keys are 190 random bits, so a fast hash is enough; passwords are not); a key is shown
once, at creation, and is recognizable by its prefix ``sbk_<12 hex>``; a key acts for exactly
one organization with exactly one role; a revoked key or a disabled operator authenticates
nothing. The first operator and key are created at the terminal by someone with the database
(``sealbill operators create``, ``sealbill keys create``): database access is the root of trust.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import pyotp
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.engine import Engine

from sealbill.app import audit, ids
from sealbill.app.context import ORG_WRITE, ROLES, Actor
from sealbill.app.errors import Conflict, Forbidden, Invalid, NotFound, Problem, Unauthenticated
from sealbill.store.db import read_transaction
from sealbill.store.parties import records as parties
from sealbill.store.schema import api_keys, operators

KEY_PREFIX = "sbk_"
_hasher = PasswordHasher()


def create_operator(engine: Engine, actor: Actor, email: str, name: str, password: str
                    ) -> dict[str, Any]:
    """A new operator; returns the TOTP secret and its provisioning URI (shown once)."""
    if actor.org_id is not None or not actor.can(ORG_WRITE):
        raise Forbidden("operators are created by an administrator at the terminal")
    try:
        email = parties.normalize_email(email)
    except ValueError as exc:
        raise Invalid("operator: 1 problem(s)", [Problem("email", str(exc))]) from None
    if len(password) < 12:
        raise Invalid("operator: 1 problem(s)",
                      [Problem("password", "at least 12 characters")])
    secret = pyotp.random_base32()
    with engine.begin() as conn:
        if conn.execute(sa.select(operators.c.id).where(operators.c.email == email)).first():
            raise Conflict(f"operator {email} exists", [Problem("email", "already used")])
        conn.execute(sa.insert(operators).values(
            email=email, name=name, password_hash=_hasher.hash(password), totp_secret=secret,
            created_at=datetime.now(UTC)))
        audit.record(conn, actor, None, "operator.create", "operator", email,
                     after={"email": email, "name": name})
    return {"email": email, "name": name, "totp_secret": secret,
            "totp_uri": pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="sealbill")}


def login(engine: Engine, email: str, password: str, totp_code: str) -> dict[str, Any]:
    """Check password and TOTP; the operator's id, email and name, or Unauthenticated."""
    refused = Unauthenticated("wrong e-mail, password or code")
    try:
        email = parties.normalize_email(email)
    except ValueError:
        raise refused from None
    with engine.begin() as conn:
        row = conn.execute(sa.select(operators).where(operators.c.email == email)).first()
    if row is None or row.disabled_at is not None:
        _hasher.hash(password)  # the same time whether the operator exists or not
        raise refused
    try:
        _hasher.verify(row.password_hash, password)
    except VerificationError:
        raise refused from None
    if not pyotp.TOTP(row.totp_secret).verify(totp_code, valid_window=1):
        raise refused
    return {"operator_id": int(row.id), "email": row.email, "name": row.name}


def _normal(email: str) -> str:
    try:
        return parties.normalize_email(email)
    except ValueError:
        return email


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: Engine, actor: Actor, org_id: int, operator_email: str, role: str,
               label: str = "") -> dict[str, Any]:
    """A new API key for an operator in the organization; the key is in the result only."""
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    if role not in ROLES:
        raise Invalid("key: 1 problem(s)", [Problem("role", f"one of {', '.join(ROLES)}")])
    prefix = KEY_PREFIX + secrets.token_hex(6)
    key = f"{prefix}_{secrets.token_urlsafe(24)}"
    with engine.begin() as conn:
        operator = conn.execute(sa.select(operators.c.id).where(
            operators.c.email == _normal(operator_email))).scalar()
        if operator is None:
            raise NotFound(f"operator {operator_email!r} not found (sealbill operators create)")
        key_id = conn.execute(sa.insert(api_keys).values(
            organization_id=org_id, operator_id=operator, prefix=prefix,
            secret_sha256=_digest(key), role=role, label=label, created_at=datetime.now(UTC)
        ).returning(api_keys.c.id)).scalar_one()
        public = ids.encode(conn, org_id, "api_key", int(key_id))
        audit.record(conn, actor, org_id, "api_key.create", "api_key", public,
                     after={"prefix": prefix, "operator": operator_email, "role": role,
                            "label": label})
    return {"id": public, "key": key, "prefix": prefix, "role": role,
            "operator": operator_email}


def revoke_key(engine: Engine, actor: Actor, org_id: int, prefix: str) -> dict[str, Any]:
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    with engine.begin() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.organization_id == org_id,
                                                     api_keys.c.prefix == prefix)).first()
        if row is None:
            raise NotFound(f"key {prefix!r} not found")
        now = datetime.now(UTC)
        conn.execute(sa.update(api_keys).where(api_keys.c.id == row.id,
                                               api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=now))
        audit.record(conn, actor, org_id, "api_key.revoke", "api_key", prefix,
                     before={"revoked_at": row.revoked_at}, after={"revoked_at": now})
    return {"prefix": prefix, "revoked_at": now}


def list_keys(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(api_keys, operators.c.email).join(
            operators, operators.c.id == api_keys.c.operator_id).where(
            api_keys.c.organization_id == org_id).order_by(api_keys.c.id)).all()
        return [{"prefix": r.prefix, "operator": r.email, "role": r.role, "label": r.label,
                 "created_at": r.created_at, "revoked_at": r.revoked_at} for r in rows]


def authenticate(engine: Engine, key: str, channel: str) -> tuple[Actor, int]:
    """The actor a key stands for, and its internal id; Unauthenticated otherwise."""
    refused = Unauthenticated("missing, unknown or revoked API key")
    key = key.strip()
    prefix = key[:len(KEY_PREFIX) + 12]  # sbk_ + 12 hex; the secret after "_" may hold "_"
    if not prefix.startswith(KEY_PREFIX) or key[len(prefix):len(prefix) + 1] != "_":
        raise refused
    with read_transaction(engine) as conn:  # no write lock on SQLite for a read
        row = conn.execute(sa.select(api_keys, operators.c.email, operators.c.disabled_at)
                           .join(operators, operators.c.id == api_keys.c.operator_id)
                           .where(api_keys.c.prefix == prefix)).first()
    if row is None or row.revoked_at is not None or row.disabled_at is not None or \
            not hmac.compare_digest(row.secret_sha256, _digest(key)):
        raise refused
    actor = Actor(name=f"operator:{row.email}", role=row.role,
                  org_id=int(row.organization_id), operator_id=int(row.operator_id),
                  key_prefix=prefix, channel=channel)
    return actor, int(row.id)
