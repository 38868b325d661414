"""Operators, API keys, the audit log, idempotency records and instance secrets.

These tables belong to the application layer (``sealbill.app``) and the HTTP API:
- an operator is a person (argon2 password hash, TOTP secret); an API key belongs to an
  operator and is scoped to one organization and one role; only the key's SHA-256 is stored;
- ``audit_log`` is append-only: sealbill never updates or deletes a row of it;
- ``idempotency_keys`` holds the first response to a POST per (API key, Idempotency-Key); its
  unique constraint is what makes two concurrent requests with one key have one effect;
- ``rate_buckets`` holds each key's request budget, shared by every server process.
"""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata
from sealbill.store.types import BigId, UtcDateTime

operators = sa.Table(
    "operators",
    metadata,
    id_column(),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),  # argon2id
    sa.Column("totp_secret", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled_at", UtcDateTime),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    id_column(),
    sa.Column("organization_id", BigId, sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("operator_id", BigId, sa.ForeignKey("operators.id"), nullable=False, index=True),
    sa.Column("prefix", sa.String(24), nullable=False, unique=True),  # shown, e.g. sbk_3f9a...
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    id_column(),
    sa.Column("organization_id", BigId, sa.ForeignKey("organizations.id"), index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),  # operator:<email> or local:<user>
    sa.Column("operator_id", BigId, sa.ForeignKey("operators.id")),
    sa.Column("api_key_prefix", sa.String(24)),
    sa.Column("channel", sa.String(10), nullable=False),  # cli | api
    sa.Column("action", sa.String(60), nullable=False),  # e.g. account.create
    sa.Column("object_kind", sa.String(30), nullable=False),
    sa.Column("object_id", sa.String(80), nullable=False),  # public id or natural key
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    id_column(),
    sa.Column("api_key_id", BigId, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer),  # NULL while the first request is in flight
    sa.Column("response", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("api_key_id", "key"),
)

# One token bucket per API key, shared by every server process on the database: each request
# (or a small lease of requests) takes its tokens in one INSERT ... ON CONFLICT DO UPDATE.
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("api_key_id", BigId, sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),  # left after this update
    sa.Column("updated_at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Column("granted", sa.Integer, nullable=False),  # tokens the last update took
)

instance_secrets = sa.Table(
    "instance_secrets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

# An operator's role in an organization, for interactive sign-in (the console); API keys carry
# their own role.
operator_roles = sa.Table(
    "operator_roles",
    metadata,
    id_column(),
    sa.Column("operator_id", BigId, sa.ForeignKey("operators.id"), nullable=False),
    sa.Column("organization_id", BigId, sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("granted_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("operator_id", "organization_id"),
)

# Server-side sessions after password + TOTP; only the token's SHA-256 is stored.
operator_sessions = sa.Table(
    "operator_sessions",
    metadata,
    id_column(),
    sa.Column("operator_id", BigId, sa.ForeignKey("operators.id"), nullable=False),
    sa.Column("organization_id", BigId, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
)
