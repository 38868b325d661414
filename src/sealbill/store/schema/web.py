"""Web console and customer portal: server-side sessions and "not for me" reports.

- ``web_sessions``: one row per signed-in browser. The cookie carries a random secret; only its
  SHA-256 is stored. An operator session names an operator and an organization (the role is
  read again from the operator's keys on every request, so a revoked key ends console access);
  a portal session names one contact and exactly one account. The CSRF token of the session is
  stored with it and every form posts it back.
- ``misdelivery_reports``: someone who received an invoice not meant for them said so through
  the signed link of the mail. The ledger stays append-only: the report points at the ledger
  rows of that invoice instead of editing them.
"""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import BigId, UtcDateTime

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    id_column(),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(10), nullable=False),  # operator | portal
    sa.Column("organization_id", BigId, sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("operator_id", BigId, sa.ForeignKey("operators.id")),
    sa.Column("contact_id", BigId, sa.ForeignKey("contacts.id")),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id")),
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
