"""Plans with versioned prices, metrics, subscriptions and their phase history."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import DecimalText, UtcDateTime

metrics = sa.Table(
    "metrics",
    metadata,
    id_column(),
    org_column(),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("aggregation", sa.String(30), nullable=False),
    sa.Column("field", sa.String(64)),  # property aggregated by unique_count / percentage
    # time_weighted_sum: the property whose value keys a separate level (bucket, seat pool)
    sa.Column("group_by", sa.String(64)),
    # Usage values below zero are refused at import unless the metric says they make sense
    # (a correction event, a balance): sealbill.inputs.usage.
    sa.Column("allows_negative", sa.Boolean, nullable=False, default=False),
    # The metric's declared range (inclusive; NULL: no bound) and precision (decimal places;
    # 0 for an integer-only metric; NULL: sealbill's 12): checked at every import.
    sa.Column("min_value", DecimalText),
    sa.Column("max_value", DecimalText),
    sa.Column("decimal_places", sa.Integer),
    sa.UniqueConstraint("organization_id", "code"),
)

# One row per price version of a plan; ``definition`` is the plan's charges as JSON
# (sealbill.store.billing.catalog), decimals as strings. A version never changes once written.
plans = sa.Table(
    "plans",
    metadata,
    id_column(),
    org_column(),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("interval", sa.String(10), nullable=False),  # month | year
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("organization_id", "code", "version"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    id_column(),
    org_column(),
    ref("accounts"),
    sa.Column("external_id", sa.String(64), nullable=False),
    sa.Column("started_on", sa.Date, nullable=False),
    sa.Column("trial_ends_on", sa.Date),
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, default=False),
    sa.Column("ends_on", sa.Date),  # exclusive; set by a cancellation
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("organization_id", "external_id"),
)

# Plan history of a subscription: a plan change closes one phase and opens the next.
subscription_phases = sa.Table(
    "subscription_phases",
    metadata,
    id_column(),
    org_column(),
    ref("subscriptions"),
    sa.Column("plan_code", sa.String(64), nullable=False),
    sa.Column("start_on", sa.Date, nullable=False),
    sa.Column("end_on", sa.Date),  # exclusive
    sa.Column("created_at", UtcDateTime, nullable=False),
)
