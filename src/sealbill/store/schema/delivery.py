"""Documents, delivery plans and envelopes, the outbox, alerts, the kill switch, tokens, ledger."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import BigId, UtcDateTime

# Rendered files of a finalized invoice; the digest is recorded once and never changes.
documents = sa.Table(
    "documents",
    metadata,
    id_column(),
    org_column(),
    ref("invoices", indexed=False),  # the unique (invoice_id, kind) serves the lookups
    sa.Column("kind", sa.String(20), nullable=False),  # pdf | xml | html | text | subject
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("invoice_id", "kind"),
)

delivery_plans = sa.Table(
    "delivery_plans",
    metadata,
    id_column(),
    org_column(),
    ref("billing_runs", name="run_id", indexed=False),  # unique: its index serves the lookups
    sa.Column("previous_plan_id", BigId, sa.ForeignKey("delivery_plans.id")),
    sa.Column("verdict", sa.String(10), nullable=False),  # proceed | hold
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("approved_by", sa.String(100)),
    sa.Column("approved_reason", sa.String(500)),
    sa.Column("approved_at", UtcDateTime),
    # The archive copy planned for every message of the run (None: no archive copy); a message
    # whose SMTP recipients name another archive is set aside.
    sa.Column("archive_email", sa.String(254)),
    # SHA-256 of the differences the approver was shown (pipeline/approval.py).
    sa.Column("approved_digest", sa.String(64)),
    sa.UniqueConstraint("run_id"),
)

# One envelope per invoice: the account and its recipients resolved from contact records.
delivery_envelopes = sa.Table(
    "delivery_envelopes",
    metadata,
    id_column(),
    org_column(),
    ref("delivery_plans", name="plan_id", indexed=False),  # the unique (plan_id, invoice_id)
    ref("billing_runs", name="run_id"),
    ref("invoices"),
    ref("accounts"),
    sa.Column("recipients", sa.JSON, nullable=False),  # [{"contact_id": 1, "email": "..."}]
    sa.Column("attachment_sha256", sa.String(64), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("is_canary", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Set when a held plan is approved: the digest of (account, recipients, archive) the
    # approver saw; a message whose recipients differ at send time is set aside.
    sa.Column("approved_sha256", sa.String(64)),
    sa.UniqueConstraint("plan_id", "invoice_id"),
)

# queued -> sending -> sent | failed_temporary (retried) | failed_permanent | held, and
# set_aside (a guard violation or an operator's `run set-aside`: excluded from the run, with
# its reason and evidence, until `run retry` queues it again for a fresh guard check).
# message_id is derived from the envelope row, so a resend after a crash reuses it.
outbox = sa.Table(
    "outbox",
    metadata,
    id_column(),
    org_column(),
    # kept although ix_outbox_run_status leads with run_id: without statistics SQLite then
    # takes the organization's index for ``organization_id = ? AND run_id = ?`` (a tie)
    ref("billing_runs", name="run_id"),
    ref("delivery_envelopes", name="envelope_id", indexed=False),  # unique: its index serves
    sa.Column("message_id", sa.String(200), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("last_error", sa.String(1000)),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("set_aside_at", UtcDateTime),
    sa.Column("set_aside_by", sa.String(100)),  # "guard", or the operator who confirmed it
    sa.Column("set_aside_reason", sa.String(1000)),
    sa.Column("set_aside_evidence", sa.JSON),
    # Per recipient (normalized address): {"state": delivered | bounced | deferred | refused,
    # "code", "reply", "at"} (domain/recipient_outcomes.py). A retry goes only to the recipients
    # neither delivered nor bounced, with the same Message-ID.
    sa.Column("recipient_outcomes", sa.JSON),
    sa.UniqueConstraint("envelope_id"),
    sa.Index("ix_outbox_run_status", "run_id", "status"),
)

# Which (invoice, contact) pairs a message of the run has claimed: written when the guard lets
# the message go, just before SMTP. The unique key makes "the same invoice twice to the same
# person in one run" impossible even if every check above it failed; the (run, contact) index
# answers "how many messages has this address had in this run" for the guard's fan-in rule.
# A message that ends failed_permanent (never accepted) releases its claims.
outbox_recipients = sa.Table(
    "outbox_recipients",
    metadata,
    id_column(),
    org_column(),
    ref("billing_runs", name="run_id", indexed=False),  # the unique key leads with it
    ref("outbox"),
    ref("invoices"),
    ref("contacts"),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "invoice_id", "contact_id"),
    sa.Index("ix_outbox_recipients_run_contact", "run_id", "contact_id"),
)

# Append-only; each row's hash covers its content and the previous row's hash (per org).
delivery_ledger = sa.Table(
    "delivery_ledger",
    metadata,
    id_column(),
    org_column(),
    sa.Column("seq", sa.BigInteger, nullable=False),  # 1, 2, 3... per organization
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("run_id", BigId, nullable=True),
    sa.Column("account_id", BigId, nullable=False, index=True),  # the data subject
    sa.Column("account_reference", sa.String(64), nullable=False),
    sa.Column("invoice_id", BigId, nullable=False),
    sa.Column("invoice_number", sa.String(40), nullable=False),
    # What the message carried: "invoice" or "credit_note" (part of the row's hash).
    sa.Column("document_kind", sa.String(20), nullable=False, server_default="invoice"),
    sa.Column("recipients", sa.JSON, nullable=False),  # [{"contact_id":..,"email":..}]
    sa.Column("data_categories", sa.JSON, nullable=False),
    sa.Column("attachment_sha256", sa.String(64), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("queued_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False, index=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Column("seal", sa.String(64)),  # HMAC over (org, seq, row_hash): store/chain.py
    sa.Column("seal_key_id", sa.String(16)),
    # One row per acceptance of a message: 1, or, for a message accepted for some recipients
    # and later (after a retry) for the others, 1 + the recipients delivered before — each
    # row lists exactly the recipients that accepted it then (disjoint). A resend after a crash
    # is the same acceptance, recorded once.
    sa.Column("part", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("organization_id", "seq"),
    sa.UniqueConstraint("organization_id", "message_id", "part"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    id_column(),
    org_column(),
    sa.Column("run_id", BigId),
    sa.Column("envelope_id", BigId),
    sa.Column("cause", sa.String(60), nullable=False),
    sa.Column("message", sa.String(2000), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime),
    sa.Column("resolved_by", sa.String(100)),
)

# The kill switch: checked before every message.
sending_switches = sa.Table(
    "sending_switches",
    metadata,
    id_column(),
    org_column(),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("changed_at", UtcDateTime, nullable=False),
    sa.Column("changed_by", sa.String(100), nullable=False),
    sa.Column("reason", sa.String(500)),
    sa.UniqueConstraint("organization_id"),
)

# Single-use signed links and codes; only a hash of the secret is stored.
verification_tokens = sa.Table(
    "verification_tokens",
    metadata,
    id_column(),
    org_column(),
    ref("contacts"),
    ref("accounts"),
    sa.Column("purpose", sa.String(30), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("revoked_reason", sa.String(200)),
)
