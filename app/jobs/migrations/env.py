"""Alembic's entry point, run by `app.jobs.sql_store.upgrade_schema` on the connection (and transaction) the store
opened: a migration commits together with its version stamp or not at all.

On PostgreSQL a transaction-level advisory lock comes first, so replicas starting together migrate once: the others
wait, then find the stamp at head. SQLite needs none: `BEGIN IMMEDIATE` already holds the database's write lock.
"""

from alembic import context
from sqlalchemy import text

MIGRATION_LOCK = 0x6A6F6273  # "jobs": the key release N-1 used too, so an old replica and a new one exclude each other

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
