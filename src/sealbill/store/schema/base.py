"""Shared metadata (with a naming convention so Alembic migrations name constraints stably)."""

import sqlalchemy as sa

from sealbill.store.types import BigId

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def id_column() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def org_column(*, indexed: bool = True) -> sa.Column[int]:
    """The tenant of the row; indexed because every query filters on it — unless the table
    has a composite index or unique constraint leading with it (``indexed=False``), which
    serves the same lookups: another index would only cost on every write."""
    return sa.Column(
        "organization_id", BigId, sa.ForeignKey("organizations.id"), nullable=False,
        index=indexed,
    )


def ref(table: str, *, nullable: bool = False, name: str | None = None,
        indexed: bool = True) -> sa.Column[int]:
    """A foreign key, indexed: rows are looked up by their parent on every stage —
    ``indexed=False`` where a composite index or unique constraint of the table leads with
    the column and serves those lookups (a second index would only cost on every write)."""
    return sa.Column(
        name or f"{table.rstrip('s')}_id", BigId, sa.ForeignKey(f"{table}.id"),
        nullable=nullable, index=indexed,
    )
