"""The database schema, one module per pipeline stage, all on one ``metadata``.

Every table but ``organizations`` carries ``organization_id``: tenancy is a column of every
row, and every query in ``sealbill.store`` filters on it.
"""

from sealbill.store.schema import append_only  # noqa: F401 - the append-only triggers
from sealbill.store.schema.access import (
    api_keys,
    audit_log,
    idempotency_keys,
    instance_secrets,
    operator_roles,
    operator_sessions,
    operators,
    rate_buckets,
)
from sealbill.store.schema.base import metadata
from sealbill.store.schema.billing import (
    account_balance_entries,
    billing_runs,
    exchange_rates,
    invoice_lines,
    invoice_tax_lines,
    invoices,
    number_series,
    rating_chunks,
)
from sealbill.store.schema.blobs import document_blobs
from sealbill.store.schema.catalog import metrics, plans, subscription_phases, subscriptions
from sealbill.store.schema.delivery import (
    alerts,
    delivery_envelopes,
    delivery_ledger,
    delivery_plans,
    documents,
    outbox,
    outbox_recipients,
    sending_switches,
    verification_tokens,
)
from sealbill.store.schema.incident import incident_events, incidents, link_corrections
from sealbill.store.schema.locks import send_locks
from sealbill.store.schema.parties import (
    account_public_ids,
    accounts,
    contact_events,
    contact_links,
    contacts,
    organizations,
)
from sealbill.store.schema.usage import usage_events
from sealbill.store.schema.web import misdelivery_reports, portal_sessions
from sealbill.store.schema.webhooks import webhook_endpoints, webhook_messages

__all__ = [
    "account_balance_entries",
    "account_public_ids",
    "accounts",
    "alerts",
    "api_keys",
    "audit_log",
    "billing_runs",
    "contact_events",
    "contact_links",
    "contacts",
    "delivery_envelopes",
    "delivery_ledger",
    "delivery_plans",
    "document_blobs",
    "documents",
    "exchange_rates",
    "idempotency_keys",
    "incident_events",
    "incidents",
    "instance_secrets",
    "invoice_lines",
    "invoice_tax_lines",
    "invoices",
    "link_corrections",
    "metadata",
    "metrics",
    "misdelivery_reports",
    "number_series",
    "operator_roles",
    "operator_sessions",
    "operators",
    "organizations",
    "outbox",
    "outbox_recipients",
    "plans",
    "portal_sessions",
    "rate_buckets",
    "rating_chunks",
    "send_locks",
    "sending_switches",
    "subscription_phases",
    "subscriptions",
    "usage_events",
    "verification_tokens",
    "webhook_endpoints",
    "webhook_messages",
]
