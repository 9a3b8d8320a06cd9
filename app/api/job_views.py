"""The public face of a job over HTTP: who owns it (a hash of the caller's API key), its JSON view, its URLs and
the 202 that points at it. Shared by routes/jobs.py and routes/ocr.py (whose sync call hands off to a job);
app/jobs knows nothing of URLs or keys, only the opaque owner string stored with each job."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from app.api.auth import presented_key
from app.api.deps import SettingsDep
from app.errors import NotFound, NotReady
from app.jobs import callbacks
from app.jobs.manager import JobManager
from app.jobs.store import Job

JOBS_PATH = "/jobs"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def running_jobs(jobs: JobManager | None) -> JobManager:
    """The job service, or 503 while it is not running (starting up or shutting down)."""
    if jobs is None or not jobs.accepting:
        raise NotReady("the job service is not running yet")
    return jobs


def check_job_id(job_id: str) -> None:
    """A job id of a shape we never issue is a 404 before any lookup (and never reaches a path)."""
    if not _JOB_ID.match(job_id):
        raise NotFound(f"no job {job_id}")


async def owned_job(job_id: str, jobs: JobManager | None, owner: str) -> Job:
    """The caller's job by id: 404 for a malformed id, an unknown job or another key's job."""
    check_job_id(job_id)
    return await running_jobs(jobs).get(job_id, owner)


def owner_for_key(api_key: str | None) -> str:
    """The owner recorded for a caller: a hash of its API key (the key itself is never stored); '' when the
    service runs without authentication, which makes every job visible to every caller."""
    if not api_key:
        return ""
    return hashlib.sha256(b"paddleocr-vl-job-owner\0" + api_key.encode()).hexdigest()[:40]


def get_owner(request: Request, settings: SettingsDep) -> str:
    """Who is asking: the hash of the presented API key when the service has one configured, else ''."""
    if settings.api_key is None:
        return ""
    return owner_for_key(presented_key(request.headers))


OwnerDep = Annotated[str, Depends(get_owner)]


def job_urls(job_id: str) -> dict[str, str]:
    status_url = f"{JOBS_PATH}/{job_id}"
    return {"status_url": status_url, "result_url": f"{status_url}/result", "events_url": f"{status_url}/events"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def job_view(job: Job) -> dict[str, Any]:
    """The public JSON of a job (GET /jobs/{id}, list entries, the SSE status event)."""
    error = None
    if job.error_type:
        error = {"type": job.error_type, "message": job.error_message, "request_id": job.id}
    return {
        "job_id": job.id,
        "status": job.status,
        "pages_done": job.pages_done,
        "pages_total": job.pages_total,
        "page_count": job.page_count,
        "options": job.options.model_dump(),
        "filename": job.filename,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "error": error,
        **({"callback": job.callback or callbacks.initial_state()} if job.callback_url else {}),
        **job_urls(job.id),
    }


def accepted(job: Job) -> JSONResponse:
    """202 pointing at a job: the body of POST /jobs and of a POST /ocr/pdf handed off to a job."""
    urls = job_urls(job.id)
    body = {"job_id": job.id, "status": job.status, **urls}
    return JSONResponse(body, status_code=202, headers={"Location": urls["status_url"]})
