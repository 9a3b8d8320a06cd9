"""Alembic migrations of the job database (app/jobs/sql_store.py runs them at `open()`); see versions/."""
