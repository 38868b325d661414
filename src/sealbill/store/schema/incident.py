"""Incidents (the Art. 33(5) register), their timeline, and retroactive link corrections."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column, ref
from sealbill.store.types import BigId, UtcDateTime

incidents = sa.Table(
    "incidents",
    metadata,
    id_column(),
    org_column(),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("aware_at", UtcDateTime, nullable=False),  # the 72-hour clock starts here
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("opened_by", sa.String(100), nullable=False),
    sa.Column("scope", sa.JSON, nullable=False),  # window, run, message ids
    sa.Column("status", sa.String(20), nullable=False),  # open | notified | closed
    sa.Column("record", sa.JSON, nullable=False),  # facts, severity, decision, measures...
    sa.Column("closed_at", UtcDateTime),
)

incident_events = sa.Table(
    "incident_events",
    metadata,
    id_column(),
    org_column(),
    ref("incidents"),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

# "This contact should never have been linked to this account": an operator's retroactive
# judgement, used by blast radius beside the history as it was recorded.
link_corrections = sa.Table(
    "link_corrections",
    metadata,
    id_column(),
    org_column(),
    ref("contacts"),
    ref("accounts"),
    sa.Column("entitled", sa.Boolean, nullable=False),
    sa.Column("valid_from", UtcDateTime),
    sa.Column("valid_to", UtcDateTime),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("incident_id", BigId, sa.ForeignKey("incidents.id")),
)
