"""The embedded job store: one SQLite database (WAL) under OUTPUT_DIR with a row per job and a row per finished
page, behind the `JobStore` protocol (app/jobs/store.py).

aiosqlite runs the one connection on its own thread, so the event loop never waits on the disk. Statements of
different callers must not interleave inside one transaction (a statement run between another caller's BEGIN and
COMMIT would join that transaction), so every operation holds `_lock` for its whole duration: writes are
serialised, as SQLite serialises them anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from app.jobs.store import DuplicateIdempotencyKey, Job, JobStatus, PageCheckpoint, job_from_row
from app.pipeline.result import PageResult

log = logging.getLogger(__name__)

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
-- pages_done follows the checkpoints inside the checkpoint's own statement: one round trip per page.
CREATE TRIGGER IF NOT EXISTS pages_done_after_checkpoint AFTER INSERT ON pages BEGIN
    UPDATE jobs SET pages_done = (SELECT COUNT(*) FROM pages WHERE job_id = NEW.job_id) WHERE id = NEW.job_id;
END;
"""




def _checkpoints(rows: list[sqlite3.Row]) -> list[PageCheckpoint]:
    return [
        PageCheckpoint(r["page_index"], PageResult.model_validate_json(r["result"]), r["computed_at"],
                       r["computations"])
        for r in rows
    ]


class SqliteJobStore:
    """`JobStore` on SQLite. `open()` before use, `close()` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)  # autocommit; explicit BEGIN where needed
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a checkpoint acknowledged to the pipeline survives power loss, not just a process kill.
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")  # readers in other processes (tests, tools) may hold it
        await conn.executescript(_SCHEMA)
        async with conn.execute("PRAGMA table_info(jobs)") as cursor:
            columns = {row[1] for row in await cursor.fetchall()}
        for column in ("callback_url", "callback"):  # databases written before webhooks existed
            if column not in columns:
                await conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is None:
            return
        async with self._lock:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def _db(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if self._conn is None:
                raise RuntimeError("the job store is not open")
            yield self._conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._db() as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Job | None:
        async with self._db() as db, db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return job_from_row(row) if row else None

    async def _many(self, sql: str, args: tuple[Any, ...] = ()) -> list[Job]:
        async with self._db() as db, db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [job_from_row(r) for r in rows]

    # --- jobs --------------------------------------------------------------------------------------------------
    async def insert(self, job: Job) -> Job:
        """Store a new job. Raises `DuplicateIdempotencyKey` (carrying the existing job) when the owner already
        used the job's idempotency key, so two racing submissions end up with one job."""
        try:
            async with self._db() as db:
                await db.execute(
                    "INSERT INTO jobs (id, owner, idempotency_key, status, options, filename, upload_sha256,"
                    " page_count, page_indices, pages_total, pages_done, runs, created_at, started_at, finished_at,"
                    " callback_url, callback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.id, job.owner, job.idempotency_key, job.status, job.options.model_dump_json(),
                        job.filename, job.upload_sha256, job.page_count, json.dumps(job.page_indices),
                        job.pages_total, job.pages_done, job.runs, job.created_at, job.started_at, job.finished_at,
                        job.callback_url, json.dumps(job.callback) if job.callback else None,
                    ),
                )
        except sqlite3.IntegrityError:
            existing = None
            if job.idempotency_key is not None:
                existing = await self.by_idempotency_key(job.owner, job.idempotency_key)
            if existing is None:
                raise
            raise DuplicateIdempotencyKey(existing) from None
        return job

    async def get(self, job_id: str) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def by_idempotency_key(self, owner: str, key: str) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key))

    async def list_for_owner(self, owner: str, limit: int = 50, status: str | None = None) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE owner = ?", [owner]
        if status:
            sql += " AND status = ?"
            args.append(status)
        return await self._many(sql + " ORDER BY created_at DESC, id LIMIT ?", (*args, limit))

    async def active(self) -> list[Job]:
        """Jobs a restart must pick up again (queued or running), oldest first."""
        return await self._many("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id")

    async def expired(self, finished_before: float) -> list[Job]:
        return await self._many(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?",
            (finished_before,),
        )

    async def all_ids(self) -> set[str]:
        async with self._db() as db, db.execute("SELECT id FROM jobs") as cur:
            return {r[0] for r in await cur.fetchall()}

    async def mark_running(self, job_id: str) -> Job | None:
        """queued/running -> running, counting the run. Returns None when the job is gone or already finished
        (a cancel or delete won the race)."""
        async with self._db() as db:
            cur = await db.execute(
                "UPDATE jobs SET status = 'running', runs = runs + 1, started_at = COALESCE(started_at, ?)"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (time.time(), job_id),
            )
            changed = cur.rowcount
        return await self.get(job_id) if changed else None

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
        async with self._db() as db:
            cur = await db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error_type = ?, error_message = ?, s3 = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (status, time.time(), error_type, error_message, json.dumps(s3) if s3 else None, job_id),
            )
            return bool(cur.rowcount)

    async def delete(self, job_id: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM pages WHERE job_id = ?", (job_id,))
            await db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    async def set_callback(self, job_id: str, state: dict[str, Any]) -> None:
        async with self._db() as db:
            await db.execute("UPDATE jobs SET callback = ? WHERE id = ?", (json.dumps(state), job_id))

    async def pending_callbacks(self) -> list[Job]:
        return await self._many(
            "SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND callback_url IS NOT NULL"
            " AND (callback IS NULL OR json_extract(callback, '$.state') = 'pending') ORDER BY finished_at, id", ()
        )

    # --- page checkpoints --------------------------------------------------------------------------------------
    async def save_page(self, job_id: str, page: PageResult) -> int:
        """Checkpoint one finished page (0-based index = `page.page - 1`) and return the job's pages_done.
        Saving a page twice keeps the newest result and counts the extra computation."""
        result_json = page.model_dump_json()
        async with self._db() as db:
            # One statement (the trigger updates pages_done in it), so one commit; a re-save (UPDATE) counts.
            await db.execute(
                "INSERT INTO pages (job_id, page_index, result, computed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job_id, page_index) DO UPDATE SET result = excluded.result,"
                " computed_at = excluded.computed_at, computations = computations + 1",
                (job_id, page.page - 1, result_json, time.time()),
            )
            rows = await db.execute_fetchall("SELECT pages_done FROM jobs WHERE id = ?", (job_id,))
        return int(next(iter(rows))[0]) if rows else 0

    async def pages(self, job_id: str) -> list[PageCheckpoint]:
        """Stored pages of a job in page order."""
        async with self._db() as db, db.execute(
            "SELECT page_index, result, computed_at, computations FROM pages WHERE job_id = ? ORDER BY page_index",
            (job_id,),
        ) as cur:
            rows = await cur.fetchall()
        return await asyncio.to_thread(_checkpoints, rows)  # a few hundred pages of JSON: off the event loop

    async def done_page_indices(self, job_id: str) -> set[int]:
        async with self._db() as db, db.execute("SELECT page_index FROM pages WHERE job_id = ?", (job_id,)) as cur:
            return {r[0] for r in await cur.fetchall()}
