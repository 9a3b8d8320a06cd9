"""Which database a process's `JobStore` uses, chosen from the settings in one place: the embedded SQLite database,
or the PostgreSQL database several replicas share (JOBS_DATABASE_URL). Both are app/jobs/sql_store.py."""

from __future__ import annotations

import os
import secrets
import socket

from app.jobs.sql_store import SqlJobStore
from app.jobs.store import JobStore
from app.settings import Settings


def replica_name() -> str:
    """This process's name in page leases: the pod (host) name, the pid, and a random tail so a restarted process
    never inherits a dead one's leases."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def create_job_store(settings: Settings) -> JobStore:
    """The store the settings call for: PostgreSQL with JOBS_DATABASE_URL, else `OUTPUT_DIR/jobs.db`."""
    if settings.jobs_database_url is not None:
        return SqlJobStore(settings.jobs_database_url.get_secret_value(), holder=replica_name(),
                           lease_s=settings.job_lease_s)
    return SqlJobStore.sqlite(settings.output_dir / "jobs.db")
