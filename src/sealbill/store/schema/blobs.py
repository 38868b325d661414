"""Rendered documents kept in the database itself (the ``database`` document store), for
setups with no directory shared between the machines that render and those that send."""

import sqlalchemy as sa

from sealbill.store.schema.base import id_column, metadata, org_column
from sealbill.store.types import UtcDateTime

document_blobs = sa.Table(
    "document_blobs",
    metadata,
    id_column(),
    org_column(),
    # What ``documents.path`` holds for it: ``db:<org slug>/<file name>`` (never changes).
    sa.Column("location", sa.String(500), nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
