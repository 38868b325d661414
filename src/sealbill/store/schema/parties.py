"""Organizations (sellers), accounts (customers), contacts and their verified links."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import UtcDateTime


def seal_columns() -> list[sa.Column[str]]:
    """A MAC over the row's entitlement fields (``domain/seals.py``) and the id of its key.
    Nullable on purpose: a row written around sealbill has none, and is reported, not
    refused by the database with an error that would stop everything else."""
    return [sa.Column("seal", sa.String(64)), sa.Column("seal_key_id", sa.String(16))]


organizations = sa.Table(
    "organizations",
    metadata,
    id_column(),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("legal_name", sa.String(200), nullable=False),
    sa.Column("address_line1", sa.String(200), nullable=False),
    sa.Column("address_line2", sa.String(200), nullable=False, server_default=""),
    sa.Column("postcode", sa.String(20), nullable=False),
    sa.Column("city", sa.String(100), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("siren", sa.String(9)),
    sa.Column("siret", sa.String(14)),
    sa.Column("vat_id", sa.String(20)),
    # Legal form, share capital, trade register (BT-33), printed on every invoice.
    sa.Column("legal_info", sa.String(300)),
    sa.Column("iban", sa.String(34)),
    sa.Column("bic", sa.String(11)),
    sa.Column("invoice_series", sa.String(20), nullable=False),  # number prefix, e.g. "F2026-"
    sa.Column("credit_note_series", sa.String(20), nullable=False),
    sa.Column("default_locale", sa.String(2), nullable=False),
    sa.Column("default_currency", sa.String(3), nullable=False),
    sa.Column("sender_email", sa.String(254), nullable=False),
    sa.Column("sender_name", sa.String(200), nullable=False),
    sa.Column("archive_email", sa.String(254)),  # the only extra copy a message may carry
    sa.Column("electronic_address", sa.String(254)),  # BT-34
    sa.Column("electronic_address_scheme", sa.String(8), nullable=False, server_default="EM"),
    sa.Column("phone", sa.String(40)),
    sa.Column("website", sa.String(200)),
    sa.Column("payment_terms_days", sa.Integer, nullable=False, server_default="30"),
    sa.Column("zero_amount_rule", sa.String(10), nullable=False, server_default="skip"),
    # OSS (art. 59c): the seller opted to tax EU consumers at their country's rate from the
    # first euro, below the €10,000 threshold.
    sa.Column("oss_opt_in", sa.Boolean, nullable=False, default=False),
    sa.Column("dpo_name", sa.String(200)),
    sa.Column("dpo_email", sa.String(254)),
    # {"allowed_reserved_domains": [exact .example/.test names], "denied_local_parts": [...]}
    # (domain/address_policy.py); None: the defaults, no reserved domain allowed.
    sa.Column("address_policy", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
    *seal_columns(),  # over the sending identity: sender, archive copy, DKIM selector
)

accounts = sa.Table(
    "accounts",
    metadata,
    id_column(),
    org_column(),
    sa.Column("reference", sa.String(64), nullable=False),  # printed on invoices
    sa.Column("public_id", sa.String(40), nullable=False, unique=True),  # URL id; grants nothing
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("address_line1", sa.String(200), nullable=False),
    sa.Column("address_line2", sa.String(200), nullable=False, server_default=""),
    sa.Column("postcode", sa.String(20), nullable=False),
    sa.Column("city", sa.String(100), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("is_business", sa.Boolean, nullable=False),
    sa.Column("vat_id", sa.String(20)),
    sa.Column("vat_id_valid", sa.Boolean, nullable=False, default=False),
    # Place-of-supply evidence for consumers (art. 24b of regulation 282/2011): the country of
    # the IP address and of the bank, beside the billing country.
    sa.Column("ip_country", sa.String(2)),
    sa.Column("bank_country", sa.String(2)),
    sa.Column("siren", sa.String(9)),
    sa.Column("electronic_address", sa.String(254)),  # BT-49
    sa.Column("electronic_address_scheme", sa.String(8), nullable=False, server_default="EM"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("locale", sa.String(2), nullable=False),
    # Masked payment method only: sealbill never stores a full card number or IBAN.
    sa.Column("payment_kind", sa.String(20)),
    sa.Column("payment_display", sa.String(60)),
    sa.Column("is_internal_test", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("archived_at", UtcDateTime),  # archived: kept, no longer billed
    sa.UniqueConstraint("organization_id", "reference"),
    # The key usage events refer to (organization and account in one foreign key: see
    # schema/usage.py).
    sa.UniqueConstraint("organization_id", "id"),
)

# Every public id an account ever had; a retired one answers "gone", never another account.
account_public_ids = sa.Table(
    "account_public_ids",
    metadata,
    id_column(),
    org_column(),
    ref("accounts"),
    sa.Column("public_id", sa.String(40), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("retired_at", UtcDateTime),
    sa.Column("retired_reason", sa.String(200)),
)

contacts = sa.Table(
    "contacts",
    metadata,
    id_column(),
    org_column(),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("bounced_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    *seal_columns(),  # over (organization, contact id, email)
    sa.UniqueConstraint("organization_id", "email"),
)

# A contact's role on an account and whether it is verified. Current state only; every change
# is also appended to contact_events, from which the state at any past instant is rebuilt.
contact_links = sa.Table(
    "contact_links",
    metadata,
    id_column(),
    org_column(),
    ref("contacts"),
    ref("accounts"),
    sa.Column("role", sa.String(20), nullable=False),  # billing | admin | technical
    sa.Column("status", sa.String(20), nullable=False),  # pending | verified | revoked
    sa.Column("status_changed_at", UtcDateTime, nullable=False),
    sa.Column("status_changed_by", sa.String(100), nullable=False),
    sa.Column("verification_method", sa.String(20)),  # email_token | operator
    sa.Column("verified_at", UtcDateTime),
    sa.Column("verified_email", sa.String(254)),  # the exact address that was verified
    sa.Column("reason", sa.String(500)),
    *seal_columns(),  # over (link, contact, account, role, status, verified address/method/time)
    sa.UniqueConstraint("contact_id", "account_id", "role"),
)

# Append-only history of contacts and links: added, address_changed, verified, revoked, bounced.
# Hash-chained per organization (seq, prev_hash, row_hash) and each row sealed over its hash
# (store/chain.py); the chain's head is also checkpointed outside the database.
contact_events = sa.Table(
    "contact_events",
    metadata,
    id_column(),
    org_column(),
    ref("contacts"),
    ref("accounts", nullable=True),
    sa.Column("role", sa.String(20)),
    sa.Column("event", sa.String(30), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("method", sa.String(30)),
    sa.Column("reason", sa.String(500)),
    sa.Column("old_value", sa.String(254)),
    sa.Column("new_value", sa.String(254)),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    sa.Column("seq", sa.BigInteger),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("row_hash", sa.String(64)),
    *seal_columns(),
    sa.UniqueConstraint("organization_id", "seq"),
)
