"""Customer portal: server-side sessions and "not for me" reports.

- ``portal_sessions``: one row per browser signed in by a magic link. The cookie carries a
  random secret; only its SHA-256 is stored. A session names one contact and exactly one
  account; its CSRF token is stored with it and every form posts it back. (Operators' console
  sessions are ``operator_sessions``, of the application layer.)
- ``misdelivery_reports``: someone who received an invoice not meant for them said so through
  the signed link of the mail. The ledger stays append-only: the report points at the ledger
  rows of that invoice instead of editing them.
"""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import BigId, UtcDateTime

portal_sessions = sa.Table(
    "portal_sessions",
    metadata,
    id_column(),
    org_column(),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    ref("contacts"),
    ref("accounts"),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("locale", sa.String(2), nullable=False, server_default="en"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
)

misdelivery_reports = sa.Table(
    "misdelivery_reports",
    metadata,
    id_column(),
    org_column(),
    ref("invoices"),
    sa.Column("ledger_seqs", sa.JSON, nullable=False),  # the ledger rows of the invoice
    sa.Column("reported_at", UtcDateTime, nullable=False),
    sa.Column("reporter_note", sa.String(500), nullable=False, server_default=""),
    sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id")),
    sa.Column("deletion_confirmed_at", UtcDateTime),
    sa.Column("incident_id", BigId, sa.ForeignKey("incidents.id")),
)
