"""Durable job state: what a job is (`Job`, `PageCheckpoint`, `PageLease`) and the operations the runner, the
leased runner, submission, the sweeper and the routes need from a store (`JobStore`). One implementation,
app/jobs/sql_store.py, serves the embedded SQLite database and the PostgreSQL one several replicas share; which one
a process uses is chosen in app/jobs/backends.py.

Every page a job finishes is stored as it completes, so a restarted service resumes at the pages still missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from app.pipeline.options import ConvertOptions
from app.pipeline.result import PageResult

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class Job:
    """One job as stored. `owner` is a key hash ('' without authentication), never the key itself."""

    id: str
    owner: str
    status: JobStatus
    options: ConvertOptions
    upload_sha256: str
    page_count: int
    page_indices: list[int]
    created_at: float
    idempotency_key: str | None = None
    filename: str | None = None
    pages_done: int = 0
    runs: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    s3: dict[str, Any] | None = field(default=None)
    callback_url: str | None = None
    callback: dict[str, Any] | None = None  # delivery state of the completion webhook, see jobs/callbacks.py

    @property
    def pages_total(self) -> int:
        return len(self.page_indices)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class PageCheckpoint:
    page_index: int
    result: PageResult
    computed_at: float
    computations: int


@dataclass(frozen=True)
class PageLease:
    """A page one holder may compute until `expires_at` (epoch seconds), renewed while it works."""

    job_id: str
    page_index: int
    holder: str
    expires_at: float


def job_from_row(row: Mapping[str, Any]) -> Job:
    """A `Job` from a database row of the `jobs` table (JSON columns decoded); every backend stores the same
    columns."""
    return Job(
        id=row["id"],
        owner=row["owner"],
        status=row["status"],
        options=ConvertOptions.model_validate_json(row["options"]),
        upload_sha256=row["upload_sha256"],
        page_count=row["page_count"],
        page_indices=json.loads(row["page_indices"]),
        created_at=row["created_at"],
        idempotency_key=row["idempotency_key"],
        filename=row["filename"],
        pages_done=row["pages_done"],
        runs=row["runs"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        s3=json.loads(row["s3"]) if row["s3"] else None,
        callback_url=row["callback_url"],
        callback=json.loads(row["callback"]) if row["callback"] else None,
    )


class DuplicateIdempotencyKey(Exception):
    """The (owner, idempotency key) pair already names a job; `job` is that job."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class JobStore(Protocol):
    """What the job service needs from its database. Every method is a coroutine and safe to call concurrently
    from the event loop; `open()` before use (creates or migrates the schema), `close()` at the end.

    Semantics every implementation keeps (the tests in tests/unit/test_job_store.py hold them):
    - `insert` raises `DuplicateIdempotencyKey` carrying the existing job when (owner, idempotency_key) is
      taken, so racing submissions end with one job;
    - `mark_running` and `finish` only move an *active* job (queued/running): the first writer of a final
      status wins, and `finish` says whether it did;
    - `save_page` is an upsert keyed by (job, page index) that counts recomputations, ends the page's lease and
      returns pages_done; a job's pages go away with `delete`;
    - a page is leased to one holder at a time (`claim_pages`), until its lease runs out unrenewed.

    `holder` names this process in page leases (empty for a store no replica shares).
    """

    holder: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def insert(self, job: Job) -> Job: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None: ...

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        """The owner's jobs, newest first, optionally of one status."""
        ...

    async def active(self) -> list[Job]:
        """Jobs a restart must pick up again (queued or running), oldest first."""
        ...

    async def expired(self, finished_before: float) -> list[Job]:
        """Finished jobs whose `finished_at` is before the cutoff."""
        ...

    async def all_ids(self) -> set[str]: ...

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run; None when the job is gone or already finished."""
        ...

    async def finish(self, job_id: str, status: JobStatus, *, error_type: str | None = None,
                     error_message: str | None = None, s3: dict[str, Any] | None = None) -> bool:
        """Move an active job to a final status; False when it was already final (first writer wins)."""
        ...

    async def delete(self, job_id: str) -> None: ...

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        """Record the delivery state of a job's completion webhook."""
        ...

    async def pending_callbacks(self) -> list[Job]:
        """Finished jobs whose webhook is not yet delivered (nor given up): what a restart resumes."""
        ...

    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`); returns the job's pages_done."""
        ...

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        """Stored pages of a job in page order."""
        ...

    async def done_page_indices(self, job_id: str) -> set[int]: ...


    # --- leases: shared work across replicas (app/jobs/leased_runner.py) ---------------------------------------
    async def claim_pages(self, holder: str, limit: int, lease_s: float) -> list[PageLease]:
        """Lease up to `limit` claimable pages of active jobs to `holder`, taking turns across jobs."""
        ...

    async def renew_leases(self, holder: str, lease_s: float) -> set[str]:
        """Extend `holder`'s leases; returns the jobs whose pages it should stop (finished or deleted)."""
        ...

    async def release_pages(self, holder: str) -> int:
        """Hand back `holder`'s unfinished leased pages at once; returns how many."""
        ...

    async def backlog(self) -> int:
        """Pages of active jobs not done yet."""
        ...

    async def heartbeat(self, holder: str) -> None: ...

    async def live_replicas(self, within_s: float) -> int:
        """Holders seen in the last `within_s` seconds, at least 1."""
        ...

    async def forget_replica(self, holder: str) -> None: ...

    async def try_advisory_lock(self, key: int) -> object | None:
        """A lock one holder at a time has (across replicas): a handle for `release_advisory_lock`, or None."""
        ...

    async def release_advisory_lock(self, held: object, key: int) -> None: ...
