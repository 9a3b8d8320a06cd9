"""What the job store's queries see of its tables (app/jobs/migrations creates them; the types here only convert
values), and the conversions between a stored row and the objects of app/jobs/store.py.

Where the two dialects differ in a statement, SQLAlchemy writes each its own SQL: `each_dialect` builds a statement
once per dialect (upserts), `CallbackState` reads a JSON member with each database's own function.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles

from app.jobs.store import ACTIVE, FINISHED, Job, PageCheckpoint
from app.pipeline.result import PageResult

metadata = sa.MetaData()
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),  # hash of the caller's API key; '' without authentication
    sa.Column("idempotency_key", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # ConvertOptions JSON
    sa.Column("filename", sa.Text),
    sa.Column("upload_sha256", sa.Text, nullable=False),
    sa.Column("page_count", sa.Integer, nullable=False),  # pages in the file
    sa.Column("page_indices", sa.Text, nullable=False),  # JSON list of the selected 0-based pages
    sa.Column("pages_total", sa.Integer, nullable=False),
    sa.Column("pages_done", sa.Integer, nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),  # how many times a runner started on it (resumes count)
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("error_type", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("s3", sa.Text),  # JSON {"bucket","keys"} once uploaded
    sa.Column("callback_url", sa.Text),  # completion webhook (jobs/callbacks.py)
    sa.Column("callback", sa.Text),  # JSON {"state","attempts","last_error"} of its delivery
)
pages = sa.Table(
    "pages", metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("page_index", sa.Integer, primary_key=True),  # 0-based page in the file
    sa.Column("state", sa.Text, nullable=False),  # pending | leased | done
    sa.Column("lease_holder", sa.Text),
    sa.Column("lease_expires_at", sa.Double),
    sa.Column("claims", sa.Integer, nullable=False),
    sa.Column("result", sa.Text),  # PageResult JSON once done
    sa.Column("computed_at", sa.Double),
    sa.Column("computations", sa.Integer, nullable=False),  # >1 would mean a page was converted again
)
replicas = sa.Table(
    "replicas", metadata,
    sa.Column("holder", sa.Text, primary_key=True),
    sa.Column("last_seen", sa.Double, nullable=False),
)

ACTIVE_STATUSES = sorted(ACTIVE)
FINISHED_STATUSES = sorted(FINISHED)
ACTIVE_JOB_IDS = sa.select(jobs.c.id).where(jobs.c.status.in_(ACTIVE_STATUSES))


def each_dialect(build: Callable[[Any], sa.Executable]) -> dict[str, sa.Executable]:
    """`build(insert)` for each database, given that dialect's `insert` (the one with `on_conflict_do_update`)."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}


class CallbackState(sa.sql.functions.FunctionElement[str]):
    """`callback`'s "state" member: JSON kept as TEXT, read by each database's own JSON function."""

    type = sa.Text()
    inherit_cache = True


@compiles(CallbackState, "sqlite")
def _callback_state_sqlite(element: CallbackState, compiler: Any, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.state')"


@compiles(CallbackState, "postgresql")
def _callback_state_postgres(element: CallbackState, compiler: Any, **kw: Any) -> str:
    return f"(CAST({compiler.process(element.clauses, **kw)} AS jsonb) ->> 'state')"


def job_values(job: Job) -> dict[str, Any]:
    """The `jobs` row of a new job."""
    return {
        "id": job.id, "owner": job.owner, "idempotency_key": job.idempotency_key, "status": job.status,
        "options": job.options.model_dump_json(), "filename": job.filename, "upload_sha256": job.upload_sha256,
        "page_count": job.page_count, "page_indices": json.dumps(job.page_indices), "pages_total": job.pages_total,
        "pages_done": job.pages_done, "runs": job.runs, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "callback_url": job.callback_url,
        "callback": json.dumps(job.callback) if job.callback else None,
    }


def checkpoints(rows: Iterable[sa.Row[Any]]) -> list[PageCheckpoint]:
    """Stored pages from `pages` rows of (page_index, result, computed_at, computations)."""
    return [
        PageCheckpoint(r.page_index, PageResult.model_validate_json(r.result), r.computed_at, r.computations)
        for r in rows
    ]
