"""Which `JobStore` a process uses, chosen from the settings in one place (a shared database joins here)."""

from __future__ import annotations

from app.jobs.sqlite_store import SqliteJobStore
from app.jobs.store import JobStore
from app.settings import Settings


def create_job_store(settings: Settings) -> JobStore:
    """The store the settings call for: today the embedded SQLite database `OUTPUT_DIR/jobs.db`."""
    return SqliteJobStore(settings.output_dir / "jobs.db")
