"""Single-use, expiring, HMAC-signed verification codes for contact addresses.

A code is ``<nonce>.<signature>``: the signature is an HMAC-SHA256, under the installation's
secret key, of (organization, contact, account, purpose, expiry, the contact's address, nonce).
Only the SHA-256 of the code is stored.

Invariants:
- a code is accepted once (``used_at`` set in the same transaction), before ``expires_at``, if
  not revoked, and only if its signature still verifies against the row *and the contact's
  current address*: a code sent to an old address, or a row edited to point at another contact
  or account, fails;
- issuing a new code revokes the unused codes of the same (contact, account, purpose);
- nothing here changes a link's status: the caller does, through ``parties.set_link_status``,
  so the verification lands in ``contact_events`` like every other change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.schema import contacts, verification_tokens

PURPOSE = "billing_contact"


class TokenError(ValueError):
    """The code is unknown, used, revoked, expired or does not verify."""


@dataclass(frozen=True)
class Redeemed:
    token_id: int
    contact_id: int
    account_id: int


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _signature(key: bytes, org_id: int, contact_id: int, account_id: int, purpose: str,
               expires_at: datetime, email: str, nonce: str) -> str:
    payload = "|".join([str(org_id), str(contact_id), str(account_id), purpose,
                        str(int(expires_at.timestamp())), email.lower(), nonce])
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


def _email(conn: Connection, org_id: int, contact_id: int) -> str:
    email = conn.execute(sa.select(contacts.c.email).where(
        contacts.c.organization_id == org_id, contacts.c.id == contact_id)).scalar()
    if email is None:
        raise TokenError("no such contact")
    return str(email)


def issue(conn: Connection, org_id: int, contact_id: int, account_id: int, key: bytes, *,
          ttl: timedelta = timedelta(hours=48), purpose: str = PURPOSE,
          now: datetime | None = None) -> tuple[str, datetime]:
    """A fresh code for the contact's current address; returns (code, expiry)."""
    now = now or datetime.now(UTC)
    expires_at = (now + ttl).replace(microsecond=0)
    nonce = secrets.token_urlsafe(12)
    signature = _signature(key, org_id, contact_id, account_id, purpose, expires_at,
                           _email(conn, org_id, contact_id), nonce)
    code = f"{nonce}.{signature}"
    conn.execute(sa.update(verification_tokens).where(
        verification_tokens.c.organization_id == org_id,
        verification_tokens.c.contact_id == contact_id,
        verification_tokens.c.account_id == account_id,
        verification_tokens.c.purpose == purpose,
        verification_tokens.c.used_at.is_(None), verification_tokens.c.revoked_at.is_(None),
    ).values(revoked_at=now, revoked_reason="superseded by a new code"))
    conn.execute(sa.insert(verification_tokens).values(
        organization_id=org_id, contact_id=contact_id, account_id=account_id, purpose=purpose,
        token_hash=digest(code), created_at=now, expires_at=expires_at))
    return code, expires_at


def redeem(conn: Connection, org_id: int, code: str, key: bytes,
           now: datetime | None = None) -> Redeemed:
    """Consume ``code``; raises :class:`TokenError` saying why it is refused."""
    now = now or datetime.now(UTC)
    row = conn.execute(sa.select(verification_tokens).where(
        verification_tokens.c.organization_id == org_id,
        verification_tokens.c.token_hash == digest(code.strip()))).first()
    if row is None:
        raise TokenError("unknown code")
    if row.used_at is not None:
        raise TokenError("this code was already used")
    if row.revoked_at is not None:
        raise TokenError(f"this code was revoked ({row.revoked_reason})")
    if row.expires_at <= now:
        raise TokenError("this code has expired")
    nonce, _, signature = code.strip().partition(".")
    expected = _signature(key, org_id, int(row.contact_id), int(row.account_id),
                          str(row.purpose), row.expires_at,
                          _email(conn, org_id, int(row.contact_id)), nonce)
    if not hmac.compare_digest(signature, expected):
        raise TokenError("the code does not match this contact's current address")
    conn.execute(sa.update(verification_tokens).where(verification_tokens.c.id == row.id)
                 .values(used_at=now))
    return Redeemed(int(row.id), int(row.contact_id), int(row.account_id))
