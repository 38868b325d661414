"""Webhook endpoints and the outbox of their messages (Standard Webhooks).

A message row is written in the transaction of the change it reports (or, for the pipeline
stages that own their transactions, right after they commit); a delivery worker sends it,
signed, with retries and backoff. ``(endpoint_id, event_key)`` is unique: one event is
queued once per endpoint however often it is emitted.
"""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import UtcDateTime

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    id_column(),
    org_column(),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),  # whsec_<base64>, shown once
    sa.Column("event_types", sa.JSON, nullable=False),  # list of types, or ["*"]
    sa.Column("allow_loopback", sa.Boolean, nullable=False, default=False),  # development only
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled_at", UtcDateTime),
)

webhook_messages = sa.Table(
    "webhook_messages",
    metadata,
    id_column(),
    org_column(),
    ref("webhook_endpoints", name="endpoint_id"),
    sa.Column("msg_id", sa.String(40), nullable=False, unique=True),  # webhook-id
    sa.Column("event_key", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False, index=True),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("failed_at", UtcDateTime),  # gave up after the last retry
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.String(500)),
    sa.UniqueConstraint("endpoint_id", "event_key"),
)
