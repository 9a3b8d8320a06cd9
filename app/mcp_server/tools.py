"""The MCP tools, thin adapters over the services the HTTP routes use (app/conversion/service.py, the JobManager,
app/chunking/): each turns its arguments into an `Upload` and `ConvertOptions`, calls the shared path, and answers
a `CallToolResult`.

- `convert_document`: the document as `content_base64` (+ `filename`), `url` (FILE_URL_ALLOWED_HOSTS only) or
  `path` (stdio only, under MCP_PATH_ROOTS). Answers the Markdown as text content and, as structured content, a
  summary (`output=markdown`), the whole DocumentResult (`json`) or retrieval chunks (`chunks`, whose JSON is then
  the text content too). Each finished page is a progress notification; a conversion that outlives
  MAX_SYNC_WAIT_S becomes a job (as over HTTP) and the tool keeps reporting the job's progress until it ends.
- `submit_job`, `get_job`, `get_job_result`, `cancel_job`: the /jobs routes.

Errors are the HTTP API's: an AppError becomes a tool error (`isError`) whose text is the same message and whose
structured content is the same `{"error": {type, message, request_id}}`; anything else is logged with its
traceback and answered as a bare internal error. Over HTTP the API key was checked by the app's middleware before
the request reached MCP, and jobs belong to that key as they do over HTTP; over stdio the local user owns them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from starlette.datastructures import Headers

from app import __version__
from app.api.auth import presented_key
from app.api.job_views import check_job_id, job_view, owner_for_key, running_jobs
from app.api.limits import check_accepting
from app.api.upload import Upload, received_file, scratch_upload
from app.chunking.chunker import ChunkOptions, chunk_document, parse_chunk_options
from app.conversion.service import HandedOff, convert_request
from app.errors import AppError, Conflict, InvalidParameter, NotFound
from app.jobs.events import JobEvent
from app.jobs.manager import JobManager
from app.jobs.store import FINISHED, Job
from app.lifecycle import Lifecycle
from app.pipeline.options import ConvertOptions, check_image_mode, resolve_options
from app.pipeline.result import DocumentResult
from app.services import Services
from app.storage.disk import as_insufficient_storage, is_disk_full, require_free_space
from app.storage.remote_file import download
from app.storage.upload_size import check_upload_size

log = logging.getLogger(__name__)

Output = Literal["markdown", "json", "chunks"]
# The MCP client's own timeout is what bounds a waiting tool; this only stops a lost job from holding a call open.
_JOB_POLL_S = 2.0
_STDIO_READY_TIMEOUT_S = 900.0  # the first start loads and warms the models


@dataclass
class Backend:
    """What the tools run on: the app's services and lifecycle, and which transport serves them."""

    services: Services
    lifecycle: Lifecycle
    stdio: bool


BackendGetter = Callable[[], Backend]


def build_mcp_server(backend: BackendGetter, *, lifespan: Any = None) -> MCPServer:
    """The MCP server with its tools bound to `backend` (called per tool call: the app's state is read live)."""
    # MCPServer configures the root logger when built (logging.basicConfig with its own handler); the service
    # configures logging once, in its entrypoint, so that configuration is undone here.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server = MCPServer(
        "paddleocr-vl", version=__version__, lifespan=lifespan,
        instructions="Convert PDFs and images (PNG, JPEG, TIFF, WebP, BMP) to Markdown, structured JSON or "
                     "retrieval chunks. Long documents run as jobs: convert_document waits and reports progress; "
                     "submit_job/get_job/get_job_result/cancel_job manage them explicitly.",
    )
    root.handlers[:] = handlers
    root.setLevel(level)

    @server.tool(description="Convert one document. Give exactly one of content_base64 (with filename), url or "
                 "path. mode: auto | text | ocr | vl; pages: 1-based selection such as '1-3,7'; lang: ISO 639-1 codes joined "
                 "by '+' (ru, ru+en, uk, de, zh) or auto (each page's script decides); output: markdown "
                 "(default) | json (the whole result: pages, blocks with boxes) | chunks (retrieval chunks; "
                 "chunking: hierarchical | hybrid, max_tokens).")
    async def convert_document(ctx: Context, content_base64: str | None = None, filename: str | None = None,
                               url: str | None = None, path: str | None = None, mode: str | None = None,
                               pages: str | None = None, lang: str | None = None, output: Output = "markdown",
                               chunking: str | None = None, max_tokens: int | None = None) -> CallToolResult:
        return await _call(backend(), "convert_document", lambda b, rid: _convert(
            b, ctx, rid, _Source(content_base64, filename, url, path), _options(b, mode, pages, lang), output,
            chunking, max_tokens))

    @server.tool(description="Start converting a document in the background; answers the job id. Same document "
                 "arguments as convert_document. Follow it with get_job, fetch it with get_job_result.")
    async def submit_job(ctx: Context, content_base64: str | None = None, filename: str | None = None,
                         url: str | None = None, path: str | None = None, mode: str | None = None,
                         pages: str | None = None, lang: str | None = None) -> CallToolResult:
        return await _call(backend(), "submit_job", lambda b, rid: _submit(
            b, ctx, rid, _Source(content_base64, filename, url, path), _options(b, mode, pages, lang)))

    @server.tool(description="A job's status and progress (pages_done of pages_total).")
    async def get_job(ctx: Context, job_id: str) -> CallToolResult:
        async def run(b: Backend, _rid: str) -> CallToolResult:
            view = job_view(await _jobs(b).get(_checked(job_id), _owner(b, ctx)))
            return _json_result(view)

        return await _call(backend(), "get_job", run)

    @server.tool(description="A succeeded job's result: output markdown (default) | json | chunks (chunking: "
                 "hierarchical | hybrid, max_tokens).")
    async def get_job_result(ctx: Context, job_id: str, output: Output = "markdown", chunking: str | None = None,
                             max_tokens: int | None = None) -> CallToolResult:
        async def run(b: Backend, rid: str) -> CallToolResult:
            chunk_options = _chunk_options(output, chunking, max_tokens)
            manager = _jobs(b)
            job = await manager.get(_checked(job_id), _owner(b, ctx))
            if job.status != "succeeded":
                raise Conflict(f"job {job.id} is {job.status}; its result exists once it has succeeded")
            result = await _job_result(manager, job)
            return await _document_result(result, output, chunk_options, {"job_id": job.id})

        return await _call(backend(), "get_job_result", run)

    @server.tool(description="Cancel a running job (its pages not started are dropped) or delete a finished one.")
    async def cancel_job(ctx: Context, job_id: str) -> CallToolResult:
        async def run(b: Backend, _rid: str) -> CallToolResult:
            job = await _jobs(b).cancel_or_delete(_checked(job_id), _owner(b, ctx))
            return _json_result(job_view(job) if job is not None else {"job_id": job_id, "deleted": True})

        return await _call(backend(), "cancel_job", run)

    return server


# --- the error boundary ---------------------------------------------------------------------------------------------

async def _call(b: Backend, tool: str, run: Callable[[Backend, str], Awaitable[CallToolResult]]) -> CallToolResult:
    request_id = uuid.uuid4().hex
    metrics = b.services.metrics
    try:
        result = await run(b, request_id)
    except AppError as exc:
        metrics.mcp_calls.labels(tool, exc.type).inc()
        log.info("mcp %s refused: %s", tool, exc.message)
        return _error_result(exc.type, exc.message, request_id)
    except Exception:
        metrics.mcp_calls.labels(tool, "internal_error").inc()
        log.exception("mcp %s failed", tool)
        return _error_result("internal_error", f"internal error (request id {request_id})", request_id)
    metrics.mcp_calls.labels(tool, "ok").inc()
    return result


def _error_result(kind: str, message: str, request_id: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True,
                          structured_content={"error": {"type": kind, "message": message, "request_id": request_id}})


def _json_result(payload: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(payload, ensure_ascii=False))],
                          structured_content=payload)


# --- arguments ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    content_base64: str | None
    filename: str | None
    url: str | None
    path: str | None


def _owner(b: Backend, ctx: Context) -> str:
    """Jobs belong to the caller's API key over HTTP, as they do on /jobs; '' without keys and over stdio."""
    if b.stdio or b.services.settings.api_key is None:
        return ""
    raw = ctx.headers or {}
    return owner_for_key(presented_key(Headers(headers=dict(raw))))


def _jobs(b: Backend) -> JobManager:
    return running_jobs(b.services.jobs)


def _checked(job_id: str) -> str:
    check_job_id(job_id)
    return job_id


def _chunk_options(output: Output, chunking: str | None, max_tokens: int | None) -> ChunkOptions | None:
    if output != "chunks":
        if chunking is not None or max_tokens is not None:
            raise InvalidParameter("chunking: only applies with output=chunks")
        return None
    return parse_chunk_options(chunking or "hybrid", max_tokens)


def _options(b: Backend, mode: str | None, pages: str | None, lang: str | None) -> ConvertOptions:
    # Crops stay on the server's disk, where an agent cannot open them: MCP conversions keep none.
    return resolve_options(b.services.settings, mode=mode, pages=pages, images="none", lang=lang)


async def _wait_started(b: Backend) -> None:
    """Over stdio the server starts with its first client: a call waits (bounded) for the models to be warm
    instead of failing with 'not ready'. Over HTTP the probes keep traffic away until then."""
    if not b.stdio:
        return
    deadline = time.monotonic() + _STDIO_READY_TIMEOUT_S
    while b.lifecycle.phase == "starting" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def _receive(b: Backend, source: _Source, request_id: str) -> Upload:
    """The document as an Upload in the uploads directory, whichever way it came."""
    settings = b.services.settings
    given = [name for name in ("content_base64", "url", "path") if getattr(source, name)]
    if len(given) != 1:
        raise InvalidParameter("give exactly one of content_base64, url or path")
    encoded = len(source.content_base64 or "")
    require_free_space(settings, encoded * 3 // 4)  # 507 before writing, as for a multipart upload
    target = scratch_upload(settings, request_id)
    try:
        if source.content_base64:
            check_upload_size(settings, encoded * 3 // 4 - 2)  # the fewest bytes this much base64 holds
            try:
                data = base64.b64decode(source.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidParameter("content_base64: not valid base64") from None
            await asyncio.to_thread(target.write_bytes, data)
            size, filename = len(data), source.filename
        elif source.url:
            size = await download(source.url, target, settings, field="url")
            filename = source.filename or Path(source.url.split("?", 1)[0]).name or None
        else:
            assert source.path is not None
            size = await asyncio.to_thread(_copy_local, b, source.path, target)
            filename = source.filename or Path(source.path).name
    except OSError as exc:
        target.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise as_insufficient_storage("the upload") from None
        raise
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return await received_file(target, size, filename, settings)


def _copy_local(b: Backend, raw: str, target: Path) -> int:
    """A local file under MCP_PATH_ROOTS, copied (the conversion, or a job, owns and removes its input)."""
    settings = b.services.settings
    if not b.stdio:
        raise InvalidParameter("path: only the stdio server reads local files; send content_base64 or url")
    roots = [Path(r.strip()).resolve() for r in (settings.mcp_path_roots or "").split(",") if r.strip()]
    if not roots:
        raise InvalidParameter("path: reading local files is off (MCP_PATH_ROOTS is empty)")
    resolved = Path(os.path.expanduser(raw)).resolve()  # symlinks resolved: a link cannot lead out of a root
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidParameter("path: not under MCP_PATH_ROOTS")
    if not resolved.is_file():
        raise NotFound(f"path: no file {raw}")
    size = resolved.stat().st_size
    check_upload_size(settings, size)
    shutil.copyfile(resolved, target)
    return size


# --- the tools' work ------------------------------------------------------------------------------------------------

async def _convert(b: Backend, ctx: Context, request_id: str, source: _Source, options: ConvertOptions,
                   output: Output, chunking: str | None, max_tokens: int | None) -> CallToolResult:
    chunk_options = _chunk_options(output, chunking, max_tokens)
    await _wait_started(b)
    check_accepting(b.lifecycle, b.services)
    upload = await _receive(b, source, request_id)
    done = 0

    async def progress(_page: Any, total: int) -> None:
        nonlocal done
        done += 1
        await ctx.report_progress(done, total, f"{done} of {total} pages")

    outcome = await convert_request(b.services, upload, options, request_id=request_id, owner=_owner(b, ctx),
                                    on_page=progress)
    if isinstance(outcome, HandedOff):
        manager = _jobs(b)
        job = await _follow_job(manager, outcome.job.id, ctx)
        if job.status != "succeeded":
            raise _job_error(job)
        result = await _job_result(manager, job)
        return await _document_result(result, output, chunk_options, {"request_id": request_id, "job_id": job.id})
    return await _document_result(outcome.result, output, chunk_options, {"request_id": request_id})


async def _submit(b: Backend, ctx: Context, request_id: str, source: _Source,
                  options: ConvertOptions) -> CallToolResult:
    manager = _jobs(b)
    upload = await _receive(b, source, request_id)  # 507 below MIN_FREE_DISK_MB before storing, as POST /jobs
    try:
        check_image_mode(upload.image_format, options.mode)
    except BaseException:
        upload.discard()
        raise
    job = await manager.submit(upload.path, options, owner=_owner(b, ctx), filename=upload.filename)
    return _json_result(job_view(job))


def _job_error(job: Job) -> AppError:
    """A job that failed or was cancelled, as the error its GET /jobs/{id} reports (same type and message)."""
    error = AppError(job.error_message or f"job {job.id} {job.status}")
    error.type = job.error_type or job.status
    return error


async def _follow_job(manager: JobManager, job_id: str, ctx: Context) -> Job:
    """Wait for a job to finish, forwarding its page events as progress notifications; the store is re-read
    every few seconds, as the SSE stream does, so a job finishing elsewhere (or unseen) still ends the wait."""
    async with manager.events.subscribe(job_id) as queue:
        while True:
            job = await manager.store.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            if job.status in FINISHED:
                return job
            try:
                event: JobEvent = await asyncio.wait_for(queue.get(), timeout=_JOB_POLL_S)
            except TimeoutError:
                continue
            if event.kind == "page":
                data = event.data
                await ctx.report_progress(data.get("pages_done", 0), data.get("pages_total"),
                                          f"job {job_id}: {data.get('pages_done')} of {data.get('pages_total')} pages")


async def _job_result(manager: JobManager, job: Job) -> DocumentResult:
    json_path, _ = await manager.result_paths(job)
    return await asyncio.to_thread(lambda: DocumentResult.model_validate_json(json_path.read_bytes()))


async def _document_result(result: DocumentResult, output: Output, chunk_options: ChunkOptions | None,
                           ids: dict[str, str]) -> CallToolResult:
    def build() -> CallToolResult:
        if output == "chunks":
            assert chunk_options is not None
            chunks = {**ids, **chunk_document(result, chunk_options).model_dump(mode="json")}
            return _json_result(chunks)
        if output == "json":
            structured = {**ids, **result.model_dump(mode="json")}
        else:
            structured = {**ids, "page_count": result.page_count, "pages": [p.page for p in result.pages],
                          "markdown": result.markdown}
        return CallToolResult(content=[TextContent(type="text", text=result.markdown)],
                              structured_content=structured)

    return await asyncio.to_thread(build)  # model dumps and tokenizing are CPU work
