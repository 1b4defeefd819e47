"""Alembic environment: run by `veo_gateway.store.database.migrate` on a live connection."""

from alembic import context

from veo_gateway.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
