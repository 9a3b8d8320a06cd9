"""Durable job state: one SQLite database (WAL) under OUTPUT_DIR with a row per job and a row per finished page.

Every page a job finishes is stored as it completes, so a restarted service resumes at the pages still missing.
All SQLite work runs on one dedicated thread that owns the only connection: callers on the event loop await it,
writes are serialised without lock contention, and a transaction is never split across threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from app.pipeline.options import ConvertOptions
from app.pipeline.result import PageResult

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE: frozenset[str] = frozenset({"queued", "running"})
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL DEFAULT '',   -- hash of the caller's API key; '' when the service has none
    idempotency_key TEXT,
    status          TEXT NOT NULL,
    options         TEXT NOT NULL,              -- ConvertOptions JSON
    filename        TEXT,
    upload_sha256   TEXT NOT NULL,
    page_count      INTEGER NOT NULL,           -- pages in the file
    page_indices    TEXT NOT NULL,              -- JSON list of the selected 0-based pages
    pages_total     INTEGER NOT NULL,
    pages_done      INTEGER NOT NULL DEFAULT 0,
    runs            INTEGER NOT NULL DEFAULT 0, -- how many times a runner started on it (resumes count)
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    error_type      TEXT,
    error_message   TEXT,
    s3              TEXT,                       -- JSON {"bucket","keys"} once uploaded
    callback_url    TEXT,                       -- completion webhook (jobs/callbacks.py)
    callback        TEXT                        -- JSON {"state","attempts","last_error"} of its delivery
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, finished_at);
CREATE TABLE IF NOT EXISTS pages (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    page_index   INTEGER NOT NULL,              -- 0-based page in the file
    result       TEXT NOT NULL,                 -- PageResult JSON
    computed_at  REAL NOT NULL,
    computations INTEGER NOT NULL DEFAULT 1,    -- >1 would mean a page was converted again after a checkpoint
    PRIMARY KEY (job_id, page_index)
);
"""


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
    callback: dict[str, Any] | None = None  # delivery state, see jobs/callbacks.py

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


class DuplicateIdempotencyKey(Exception):
    """The (owner, idempotency key) pair already names a job; `job` is that job."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


def _row_to_job(row: sqlite3.Row) -> Job:
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


class JobStore:
    """Async facade over the job database. `open()` before use, `close()` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobstore")
        await self._run(self._open_sync)

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit BEGIN where it matters
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a checkpoint acknowledged to the pipeline survives power loss, not just a process kill.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")  # readers in other processes (tests, tools) may hold it briefly
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        for column in ("callback_url", "callback"):  # databases written before webhooks existed
            if column not in columns:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
        self._conn = conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("JobStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "JobStore is not open"
        return self._conn

    # --- jobs --------------------------------------------------------------------------------------------------
    async def insert(self, job: Job) -> Job:
        """Store a new job. Raises `DuplicateIdempotencyKey` (carrying the existing job) when the owner already
        used the job's idempotency key, so two racing submissions end up with one job."""
        return await self._run(self._insert_sync, job)

    def _insert_sync(self, job: Job) -> Job:
        try:
            self._db.execute(
                "INSERT INTO jobs (id, owner, idempotency_key, status, options, filename, upload_sha256, page_count,"
                " page_indices, pages_total, pages_done, runs, created_at, started_at, finished_at, callback_url,"
                " callback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id, job.owner, job.idempotency_key, job.status, job.options.model_dump_json(), job.filename,
                    job.upload_sha256, job.page_count, json.dumps(job.page_indices), job.pages_total, job.pages_done,
                    job.runs, job.created_at, job.started_at, job.finished_at, job.callback_url,
                    json.dumps(job.callback) if job.callback else None,
                ),
            )
        except sqlite3.IntegrityError:
            existing = self._by_idempotency_sync(job.owner, job.idempotency_key)
            if existing is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None
        return job

    async def get(self, job_id: str) -> Job | None:
        return await self._run(self._get_sync, job_id)

    def _get_sync(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        return await self._run(self._by_idempotency_sync, owner, key)

    def _by_idempotency_sync(self, owner: str, key: str | None) -> Job | None:
        row = self._db.execute(
            "SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key)
        ).fetchone()
        return _row_to_job(row) if row else None

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        return await self._run(self._list_sync, owner, limit, status)

    def _list_sync(self, owner: str, limit: int, status: str | None) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE owner = ?", [owner]
        if status:
            sql += " AND status = ?"
            args.append(status)
        rows = self._db.execute(sql + " ORDER BY created_at DESC, id LIMIT ?", (*args, limit)).fetchall()
        return [_row_to_job(r) for r in rows]

    async def active(self) -> list[Job]:
        """Jobs a restart must pick up again (queued or running), oldest first."""
        return await self._run(self._active_sync)

    def _active_sync(self) -> list[Job]:
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    async def expired(self, finished_before: float) -> list[Job]:
        return await self._run(self._expired_sync, finished_before)

    def _expired_sync(self, finished_before: float) -> list[Job]:
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?",
            (finished_before,),
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    async def all_ids(self) -> set[str]:
        return await self._run(lambda: {r[0] for r in self._db.execute("SELECT id FROM jobs")})

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run. Returns None when the job is gone or already finished
        (a cancel or delete won the race)."""
        return await self._run(self._mark_running_sync, job_id)

    def _mark_running_sync(self, job_id: str) -> Job | None:
        now = time.time()
        cur = self._db.execute(
            "UPDATE jobs SET status = 'running', runs = runs + 1, started_at = COALESCE(started_at, ?)"
            " WHERE id = ? AND status IN ('queued', 'running')",
            (now, job_id),
        )
        return self._get_sync(job_id) if cur.rowcount else None

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
        s3: dict[str, Any] | None = None,
    ) -> bool:
        """Move an active job to a final status; False when it was already final (first writer wins)."""
        return await self._run(self._finish_sync, job_id, status, error_type, error_message, s3)

    def _finish_sync(self, job_id: str, status: str, error_type: str | None, error_message: str | None,
                     s3: dict[str, Any] | None) -> bool:
        cur = self._db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, error_type = ?, error_message = ?, s3 = ?"
            " WHERE id = ? AND status IN ('queued', 'running')",
            (status, time.time(), error_type, error_message, json.dumps(s3) if s3 else None, job_id),
        )
        return bool(cur.rowcount)

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        """Record the delivery state of a job's completion webhook."""
        await self._run(lambda: self._db.execute("UPDATE jobs SET callback = ? WHERE id = ?",
                                                 (json.dumps(state), job_id)))

    async def pending_callbacks(self) -> list[Job]:
        """Finished jobs whose webhook is not yet delivered (nor given up): what a restart resumes."""
        return await self._run(self._pending_callbacks_sync)

    def _pending_callbacks_sync(self) -> list[Job]:
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND callback_url IS NOT NULL"
            " AND (callback IS NULL OR json_extract(callback, '$.state') = 'pending') ORDER BY finished_at, id"
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    async def delete(self, job_id: str) -> None:
        await self._run(self._delete_sync, job_id)

    def _delete_sync(self, job_id: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM pages WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # --- page checkpoints --------------------------------------------------------------------------------------
    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`) and return the job's pages_done.
        Saving a page twice keeps the newest result and counts the extra computation."""
        return await self._run(self._save_page_sync, job_id, page.page - 1, page.model_dump_json())

    def _save_page_sync(self, job_id: str, page_index: int, result_json: str) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO pages (job_id, page_index, result, computed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job_id, page_index) DO UPDATE SET result = excluded.result,"
                " computed_at = excluded.computed_at, computations = computations + 1",
                (job_id, page_index, result_json, time.time()),
            )
            db.execute(
                "UPDATE jobs SET pages_done = (SELECT COUNT(*) FROM pages WHERE job_id = ?) WHERE id = ?",
                (job_id, job_id),
            )
            (done,) = db.execute("SELECT pages_done FROM jobs WHERE id = ?", (job_id,)).fetchone() or (0,)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(done)

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        """Stored pages of a job in page order."""
        return await self._run(self._pages_sync, job_id)

    def _pages_sync(self, job_id: str) -> list[PageCheckpoint]:
        rows = self._db.execute(
            "SELECT page_index, result, computed_at, computations FROM pages WHERE job_id = ? ORDER BY page_index",
            (job_id,),
        ).fetchall()
        return [
            PageCheckpoint(r["page_index"], PageResult.model_validate_json(r["result"]), r["computed_at"],
                           r["computations"])
            for r in rows
        ]

    async def done_page_indices(self, job_id: str) -> set[int]:
        return await self._run(
            lambda: {r[0] for r in self._db.execute("SELECT page_index FROM pages WHERE job_id = ?", (job_id,))}
        )
