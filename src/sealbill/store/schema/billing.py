"""Billing runs, invoices and credit notes, their lines and VAT, and the number series."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import BigId, DecimalText, UtcDateTime

billing_runs = sa.Table(
    "billing_runs",
    metadata,
    id_column(),
    org_column(),
    sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),  # exclusive
    # drafted -> finalized -> rendered -> planned -> held|approved -> sending -> sent | halted
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finalized_at", UtcDateTime),
    sa.Column("halted_reason", sa.String(500)),
    sa.UniqueConstraint("organization_id", "period"),
)

# The rating chunks of a run started on the queue (``sealbill run start``): account id ranges
# [first_account_id, next_account_id), the last one open-ended (accounts created meanwhile fall
# in it). Written with the run, in its transaction; ``rated_at`` is set in the transaction that
# inserts the chunk's drafts, so a chunk is rated whole or not at all, and once.
rating_chunks = sa.Table(
    "rating_chunks",
    metadata,
    id_column(),
    org_column(),
    ref("billing_runs", name="run_id"),
    sa.Column("first_account_id", BigId, nullable=False),
    sa.Column("next_account_id", BigId),  # exclusive; NULL: to the last account
    sa.Column("rated_at", UtcDateTime),
    sa.Column("drafted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("problems", sa.Text),  # one line per account left unbilled (JSON list)
    sa.UniqueConstraint("run_id", "first_account_id"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    id_column(),
    # Not indexed alone: the unique (organization_id, billing_key) and (organization_id,
    # number) and the (run_id, status) and (run_id, account_id) indexes lead with these
    # columns. Every draft written, and every finalization (the number and status change, so
    # PostgreSQL writes an entry in every index), would pay for two indexes that no lookup
    # needs (bench/RESULTS.md, pgcycle, 2026-12-07 21:00).
    org_column(indexed=False),
    ref("billing_runs", nullable=True, name="run_id", indexed=False),
    ref("accounts"),
    sa.Column("kind", sa.String(20), nullable=False),  # invoice | credit_note
    sa.Column("status", sa.String(20), nullable=False),  # draft | finalized | void
    # What makes a rerun never bill twice: "<account>:<period>" for a period invoice,
    # "credit:<invoice id>:<n>" for a credit note.
    sa.Column("billing_key", sa.String(100), nullable=False),
    sa.Column("number", sa.String(40)),  # given at finalization, never before
    sa.Column("period_start", sa.Date),  # invoicing period (BT-73/74) ...
    sa.Column("period_end", sa.Date),  # ... its last day, inclusive
    sa.Column("issue_date", sa.Date),
    sa.Column("due_date", sa.Date),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("locale", sa.String(2), nullable=False),
    sa.Column("total_excl_minor", sa.BigInteger, nullable=False),
    sa.Column("tax_total_minor", sa.BigInteger, nullable=False),
    sa.Column("total_incl_minor", sa.BigInteger, nullable=False),
    sa.Column("corrects_invoice_id", BigId, sa.ForeignKey("invoices.id")),
    # Seller, buyer and payment method as they were at finalization (never a live join).
    sa.Column("seller_snapshot", sa.JSON),
    sa.Column("buyer_snapshot", sa.JSON),
    sa.Column("payment_snapshot", sa.JSON),
    sa.Column("account_reference", sa.String(64), nullable=False),
    sa.Column("business_process", sa.String(10), nullable=False, server_default="S1"),
    sa.Column("notes", sa.JSON),
    # BT-6/BT-111 of an invoice not in EUR with VAT: {currency, rate, rate_date, source,
    # tax_total_minor}, fixed at finalization from the operator's rate table.
    sa.Column("vat_accounting", sa.JSON),
    # Sales to EU consumers in another member state (OSS): the amount in euro cents counted
    # towards the seller's €10,000 threshold of the run's year, and the tax facts:
    # {"scheme": "oss" | "below_threshold", "country", "evidence": {...}}.
    sa.Column("oss_eur_minor", sa.BigInteger),
    # BT-113: the customer's credit applied at finalization (BT-115 = total_incl - this).
    sa.Column("prepaid_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tax_facts", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finalized_at", UtcDateTime),
    sa.Column("voided_at", UtcDateTime),
    sa.Column("void_reason", sa.String(500)),
    sa.UniqueConstraint("organization_id", "billing_key"),
    sa.UniqueConstraint("organization_id", "number"),
    sa.Index("ix_invoices_run_status", "run_id", "status"),
    # The send-time guard counts, per message, the invoices of a run whose account a contact
    # is verified for: (run, account) lookups instead of a scan of the run.
    sa.Index("ix_invoices_run_account", "run_id", "account_id"),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    id_column(),
    org_column(),
    ref("invoices", indexed=False),  # the unique (invoice_id, position) serves the lookups
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("quantity", DecimalText, nullable=False),
    sa.Column("unit_price", DecimalText, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("vat_category", sa.String(2), nullable=False),
    sa.Column("vat_rate", DecimalText, nullable=False),
    sa.Column("period_start", sa.Date),
    sa.Column("period_end", sa.Date),
    sa.UniqueConstraint("invoice_id", "position"),
)

invoice_tax_lines = sa.Table(
    "invoice_tax_lines",
    metadata,
    id_column(),
    org_column(),
    ref("invoices"),
    sa.Column("vat_category", sa.String(2), nullable=False),
    sa.Column("vat_rate", DecimalText, nullable=False),
    sa.Column("base_minor", sa.BigInteger, nullable=False),
    sa.Column("tax_minor", sa.BigInteger, nullable=False),
    sa.Column("exemption_reason", sa.String(500)),
    sa.Column("exemption_code", sa.String(30)),
)

# Gapless numbering: the finalizing transaction locks its series row (SELECT ... FOR UPDATE on
# PostgreSQL, the database write lock on SQLite), takes next_value and increments it; a
# rollback gives the number back, so no gap can appear.
number_series = sa.Table(
    "number_series",
    metadata,
    id_column(),
    org_column(),
    sa.Column("prefix", sa.String(20), nullable=False),
    sa.Column("next_value", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("organization_id", "prefix"),
)

# Exchange rates the operator provides (e.g. the ECB reference rates): ``rate`` units of
# ``currency`` for one euro on ``rate_date``. Finalization takes the latest on or before the
# issue date and copies it onto the invoice; a rate once stored is never changed.
exchange_rates = sa.Table(
    "exchange_rates",
    metadata,
    id_column(),
    org_column(),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("rate_date", sa.Date, nullable=False),
    sa.Column("rate", DecimalText, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("organization_id", "currency", "rate_date"),
)

# A customer's balance, append-only: credit notes (+), manual credits (+), refunds (-), credit
# applied to an invoice at its finalization (-). The balance of an account in a currency is the
# sum; it never goes below zero (an invoice takes at most what is there, a refund too).
account_balance_entries = sa.Table(
    "account_balance_entries",
    metadata,
    id_column(),
    org_column(),
    ref("accounts"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # credit_note | manual | applied | refund
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id")),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_account_balance_entries_account", "account_id"),
)
