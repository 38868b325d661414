"""Alembic environment: the engine comes from the caller (sealbill.store.migrate)."""

from alembic import context

from sealbill.store.db import create_engine
from sealbill.store.schema import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine()

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
