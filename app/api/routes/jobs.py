"""Asynchronous jobs: submit a PDF, poll or stream its progress, fetch the result, cancel or delete it.

With an API key, a job belongs to the key that created it (a hash of it is stored); any other caller gets 404,
as if the id did not exist. Job ids are random, so they cannot be enumerated either.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.deps import JobsDep, LifecycleDep, RequestIdDep, ServicesDep
from app.api.open_file import open_for_serving, serve_file
from app.api.job_views import OwnerDep, accepted, check_job_id, job_view, running_jobs
from app.api.request_form import JobRequest, form_schema, options_of
from app.api.upload import receive_pdf_upload
from app.chunking.chunker import ChunkOptions, chunk_document, parse_chunk_options
from app.errors import Conflict
from app.jobs.events import JobEvent
from app.jobs.manager import JobManager
from app.jobs.store import FINISHED
from app.pipeline.result import DocumentResult

router = APIRouter(tags=["jobs"])

_RECHECK_S = 15.0  # a quiet stream re-reads the store this often
_POLL_S = 1.0


@router.post(
    "/jobs",
    status_code=202,
    summary="Convert a PDF asynchronously",
    description="Multipart `file` plus the options of /ocr/pdf (`pages`, `mode`, `dpi`, `images`, `lang`) and an optional "
    "`callback_url` (signed POST when the job ends). Answers 202 with the "
    "job's URLs once the upload is stored; the same `Idempotency-Key` (per API key) returns the same job. "
    "Bad input gets the same 4xx as /ocr/pdf; 507 when the output disk is nearly full.",
    responses={202: {"description": "Job accepted; `Location` is its status URL"}, 507: {"description": "Disk full"}},
    openapi_extra={"requestBody": form_schema(JobRequest)},
)
async def submit_job(
    request: Request,
    services: ServicesDep,
    jobs: JobsDep,
    owner: OwnerDep,
    request_id: RequestIdDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    callback_url: Annotated[str | None, Query(description="Webhook POSTed when the job ends (form field too); its "
                                              "host must be in CALLBACK_ALLOWED_HOSTS")] = None,
) -> JSONResponse:
    settings = services.settings
    manager = running_jobs(jobs)
    upload = await receive_pdf_upload(request, settings, request_id)  # 507 before reading a body we cannot keep
    try:
        job_request = options_of(services, upload, {"callback_url": callback_url} if callback_url else None,
                                 model=JobRequest)
    except BaseException:
        upload.discard()
        raise
    job = await manager.submit(upload.path, job_request.options(), owner=owner, idempotency_key=idempotency_key,
                               filename=upload.filename, callback_url=job_request.callback_url)
    return accepted(job)


@router.get("/jobs", summary="Recent jobs of the caller")
async def list_jobs(
    jobs: JobsDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
) -> dict[str, Any]:
    return {"jobs": [job_view(j) for j in await running_jobs(jobs).list_jobs(owner, limit, status)]}


@router.get("/jobs/{job_id}", summary="Status and progress of a job")
async def get_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> dict[str, Any]:
    check_job_id(job_id)
    return job_view(await running_jobs(jobs).get(job_id, owner))


@router.get(
    "/jobs/{job_id}/result",
    summary="The finished job's result",
    description="`format=json` (default), `markdown`, `zip` (result.md, result.json and images/) or `chunks` "
    "(retrieval chunks: `chunking` hierarchical|hybrid, default hybrid, and `max_tokens`); without "
    "`format`, `Accept: text/markdown` picks Markdown. 409 while the job has not succeeded.",
    responses={409: {"description": "Not finished (or failed/cancelled)"}},
)
async def get_result(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    owner: OwnerDep,
    format: Literal["json", "markdown", "zip", "chunks"] | None = None,  # noqa: A002 - the public parameter's name
    chunking: str | None = Query(None, description="With format=chunks: hierarchical | hybrid (default)"),
    max_tokens: str | None = Query(None, description="With format=chunks: the largest chunk, in tokens"),
) -> Response:
    check_job_id(job_id)
    chunk_options = parse_chunk_options(chunking or "hybrid", max_tokens) if format == "chunks" else None
    manager = running_jobs(jobs)
    job = await manager.get(job_id, owner)
    if job.status != "succeeded":
        raise Conflict(f"job {job.id} is {job.status}; its result exists once it has succeeded")
    if format is None:
        format = "markdown" if "text/markdown" in request.headers.get("accept", "") else "json"
    # A DELETE may run at any point from here: every read below answers whole or 404 (app/api/open_file.py).
    json_path, md_path = await manager.result_paths(job)
    if format == "zip":
        from app.api.routes.images import job_bundle  # result.md, result.json and images/ in one download

        return await job_bundle(manager.settings, job.id)
    if format == "markdown":
        return await serve_file(md_path, media_type="text/markdown; charset=utf-8", what=f"the result of job {job.id}")
    if chunk_options is not None:
        body = await asyncio.to_thread(chunks_of_result_file, json_path, chunk_options, f"the result of job {job.id}")
        return Response(body, media_type="application/json")
    return await serve_file(json_path, media_type="application/json", what=f"the result of job {job.id}")


async def _events_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> JobManager:
    """The job's manager, after checking the job exists for this caller: 404 before the stream starts."""
    check_job_id(job_id)
    manager = running_jobs(jobs)
    await manager.get(job_id, owner)
    return manager


@router.get(
    "/jobs/{job_id}/events",
    summary="Progress as Server-Sent Events",
    description="A `status` event with the current state, one `page` event per finished page, a final `status` "
    "event (succeeded/failed/cancelled), then the stream ends.",
    response_class=EventSourceResponse,
)
async def job_events(
    job_id: str, manager: Annotated[JobManager, Depends(_events_job)], lifecycle: LifecycleDep
) -> AsyncIterator[ServerSentEvent]:
    # FastAPI's SSE support frames the events, sets the no-cache/no-buffering headers and sends keep-alive
    # comments while the job is quiet.
    async with manager.events.subscribe(job_id) as queue:
        # Subscribed first, read second: nothing that happens in between is missed.
        job = await manager.store.get(job_id)
        if job is None:
            return
        yield _sse(JobEvent.status_of(job))
        if job.status in FINISHED:
            return
        quiet_since = time.monotonic()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=_POLL_S)
            except TimeoutError:
                if lifecycle.shutting_down:
                    return  # an open stream must not hold up the server's drain; clients reconnect
                # With a shared database the job may be progressing on another replica: its events never reach
                # this process, so the store is read at every poll instead.
                if not manager.shared and time.monotonic() - quiet_since < _RECHECK_S:
                    continue
                quiet_since = time.monotonic()
                # Quiet for a while: re-read the store in case the job ended (or was deleted) unseen.
                seen = job
                job = await manager.store.get(job_id)
                if job is None:
                    return
                if job.status in FINISHED:
                    yield _sse(JobEvent.status_of(job))
                    return
                if job.pages_done != seen.pages_done:
                    yield _sse(JobEvent.status_of(job))  # progress made elsewhere
                continue
            quiet_since = time.monotonic()
            yield _sse(event)
            if event.final:
                return


def chunks_of_result_file(json_path: Path, options: ChunkOptions, what: str) -> bytes:
    """A stored result.json cut into chunks (in a thread: parsing and tokenizing are CPU work); NotFound when a
    DELETE removed it first."""
    with open_for_serving(json_path, what) as fh:
        result = DocumentResult.model_validate_json(fh.read())
    return chunk_document(result, options).model_dump_json().encode("utf-8")


def _sse(event: JobEvent) -> ServerSentEvent:
    """A status event carries the job's public view; a page event its progress numbers."""
    data = job_view(event.job) if event.kind == "status" and event.job is not None else event.data
    # Compact JSON, as the stream has always been framed (clients may match on `"status":"succeeded"`).
    return ServerSentEvent(event=event.kind, raw_data=json.dumps(data, separators=(",", ":")))


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a running job or delete a finished one",
    description="An active job is cancelled (pages not started are never started) and its status returned; "
    "a finished job is deleted with its files (204).",
    responses={204: {"description": "Deleted"}},
)
async def delete_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    check_job_id(job_id)
    job = await running_jobs(jobs).cancel_or_delete(job_id, owner)
    if job is None:
        return Response(status_code=204)
    return JSONResponse(job_view(job))
