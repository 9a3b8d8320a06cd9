"""`Client` and `AsyncClient`: one set of methods over httpx, sync and async.

What a request is and what its answer means lives once, in the `_Call` helpers (`_convert_call`, `_parse_*`);
the two classes only do the I/O. A 503 is retried after its `Retry-After` (bounded by `max_retries` and
`max_retry_wait_s`); the file is re-read for every attempt. `wait` follows `GET /jobs/{id}/events`; when the
stream drops before the final status it reconnects (sending `Last-Event-ID` when the server gave event ids), and
since every connection starts with the job's current status, progress picks up where it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from paddleocr_vl_client.models import ApiError, ChunkSet, ConversionResult, Job

FileInput = str | os.PathLike[str] | bytes | IO[bytes]
ProgressCallback = Callable[[Job], None]

_DEFAULT_URL = "http://127.0.0.1:8081"


@dataclass
class _Call:
    """One HTTP request, with the file part (re-opened for every attempt) kept apart from the rest."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    file: FileInput | None = None
    filename: str | None = None

    def file_part(self) -> dict[str, tuple[str, Any, str]] | None:
        if self.file is None:
            return None
        source = self.file
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            return {"file": (self.filename or path.name, path.read_bytes(), "application/octet-stream")}
        if isinstance(source, bytes):
            return {"file": (self.filename or "document.pdf", source, "application/octet-stream")}
        if hasattr(source, "seek"):
            source.seek(0)
        return {"file": (self.filename or getattr(source, "name", "document.pdf"), source.read(),
                         "application/octet-stream")}


def _options(mode: str | None, pages: str | None, dpi: int | None, images: str | None, chunking: str | None = None,
             max_tokens: int | None = None) -> dict[str, str]:
    values = {"mode": mode, "pages": pages, "dpi": dpi, "images": images, "chunking": chunking,
              "max_tokens": max_tokens}
    return {k: str(v) for k, v in values.items() if v is not None}


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()["error"]
        kind, message, request_id = body.get("type", "error"), body.get("message", ""), body.get("request_id")
    except (ValueError, KeyError, TypeError):
        kind, message, request_id = "http_error", response.text[:300], None
    return ApiError(response.status_code, kind, message, request_id, _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise _error(response)
    return response


def _parse_sse(lines: Iterator[str] | list[str]) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) for every complete event in `lines` (the SSE framing, comments skipped)."""
    event, data, event_id = "message", [], None
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class _Follower:
    """The state of one `wait`: the job as last seen and the last event id, fed by SSE events."""

    def __init__(self, job: Job, on_progress: ProgressCallback | None) -> None:
        self.job = job
        self.last_event_id: str | None = None
        self.on_progress = on_progress

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}

    def feed(self, event: str, data: str, event_id: str | None) -> bool:
        """Take one event; True once the job has finished."""
        if event_id:
            self.last_event_id = event_id
        payload = json.loads(data)
        if event == "status":
            self.job = Job.from_json(payload)
        elif event == "page":
            self.job = self.job.with_progress(payload.get("pages_done", self.job.pages_done), payload.get("pages_total"))
        else:
            return False
        if self.on_progress is not None:
            self.on_progress(self.job)
        return self.job.finished


class Client:
    """Synchronous client. `base_url` is the service's root; `api_key` is sent as a Bearer token."""

    def __init__(self, base_url: str = _DEFAULT_URL, api_key: str | None = None, *, timeout_s: float = 600.0,
                 max_retries: int = 5, max_retry_wait_s: float = 60.0, reconnects: int = 20,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)
        self.max_retries, self.max_retry_wait_s, self.reconnects = max_retries, max_retry_wait_s, reconnects
        self._sleep = time.sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            response = self._http.request(call.method, call.path, params=call.params, data=call.data or None,
                                          headers=call.headers, files=call.file_part())
            wait = _retry_after(response)
            if response.status_code != 503 or attempt == self.max_retries or wait is None:
                return _checked(response)
            self._sleep(min(wait, self.max_retry_wait_s))
        raise AssertionError("unreachable")

    # --- conversions ----------------------------------------------------------------------------------------------
    def convert(self, file: FileInput, *, filename: str | None = None, mode: str | None = None,
                pages: str | None = None, dpi: int | None = None, images: str | None = None,
                chunking: str | None = None, max_tokens: int | None = None,
                on_progress: ProgressCallback | None = None) -> ConversionResult:
        """POST /ocr/pdf. When the server hands a long conversion to a job (202), waits for the job and fetches its
        result (and its chunks, when asked for) instead."""
        call = _Call("POST", "/ocr/pdf", data=_options(mode, pages, dpi, images, chunking, max_tokens), file=file,
                     filename=filename, headers={"Accept": "application/json"})
        response = self._send(call)
        if response.status_code == 202:
            job = self.wait(response.json()["job_id"], on_progress=on_progress)
            result = self.result(job.job_id)
            if chunking is not None:
                chunks = self.chunks(job.job_id, chunking=chunking, max_tokens=max_tokens)
                result = ConversionResult.from_json({**result.raw, "chunks": chunks.raw}, job_id=job.job_id)
            return result
        return ConversionResult.from_json(response.json())

    # --- jobs ---------------------------------------------------------------------------------------------------
    def submit(self, file: FileInput, *, filename: str | None = None, mode: str | None = None,
               pages: str | None = None, dpi: int | None = None, images: str | None = None,
               idempotency_key: str | None = None, callback_url: str | None = None) -> Job:
        data = _options(mode, pages, dpi, images)
        if callback_url:
            data["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._send(_Call("POST", "/jobs", data=data, headers=headers, file=file, filename=filename))
        return Job.from_json(response.json())

    def get_job(self, job_id: str) -> Job:
        return Job.from_json(self._send(_Call("GET", f"/jobs/{job_id}")).json())

    def wait(self, job_id: str, *, on_progress: ProgressCallback | None = None) -> Job:
        """Follow the job's events until it finishes (reconnecting when the stream drops); returns the final job.
        `on_progress` gets the job after every event."""
        follower = _Follower(Job(job_id=job_id, status="queued"), on_progress)
        failures = 0
        while True:
            try:
                with self._http.stream("GET", f"/jobs/{job_id}/events", headers=follower.headers()) as response:
                    if response.status_code == 503 and failures < self.reconnects:
                        failures += 1
                        self._sleep(min(_retry_after(response) or 1.0, self.max_retry_wait_s))
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise _error(response)
                    for event, data, event_id in _parse_sse(response.iter_lines()):
                        if follower.feed(event, data, event_id):
                            return follower.job
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass
            failures += 1  # the stream ended (or broke) before the final status: reconnect
            if failures > self.reconnects:
                raise ApiError(0, "stream_lost", f"lost the event stream of job {job_id} {failures} times")
            self._sleep(min(0.5 * failures, 5.0))

    def result(self, job_id: str) -> ConversionResult:
        response = self._send(_Call("GET", f"/jobs/{job_id}/result", params={"format": "json"}))
        return ConversionResult.from_json(response.json(), job_id=job_id)

    def markdown(self, job_id: str) -> str:
        return self._send(_Call("GET", f"/jobs/{job_id}/result", params={"format": "markdown"})).text

    def chunks(self, job_id: str, *, chunking: str = "hybrid", max_tokens: int | None = None) -> ChunkSet:
        params = {"format": "chunks", **_options(None, None, None, None, chunking, max_tokens)}
        return ChunkSet.from_json(self._send(_Call("GET", f"/jobs/{job_id}/result", params=params)).json())

    def download_zip(self, job_id: str, dest: str | os.PathLike[str]) -> Path:
        """result.md, result.json and images/ in one zip, streamed to `dest` (a temp name, then renamed)."""
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.part")
        with self._http.stream("GET", f"/jobs/{job_id}/result", params={"format": "zip"}) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        os.replace(tmp, dest)
        return dest

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a running job (returns it) or delete a finished one (returns None)."""
        response = self._send(_Call("DELETE", f"/jobs/{job_id}"))
        return None if response.status_code == 204 else Job.from_json(response.json())


class AsyncClient:
    """Asynchronous client: the methods of `Client`, awaited."""

    def __init__(self, base_url: str = _DEFAULT_URL, api_key: str | None = None, *, timeout_s: float = 600.0,
                 max_retries: int = 5, max_retry_wait_s: float = 60.0, reconnects: int = 20,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)
        self.max_retries, self.max_retry_wait_s, self.reconnects = max_retries, max_retry_wait_s, reconnects
        self._sleep = asyncio.sleep

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            files = await asyncio.to_thread(call.file_part)  # reading a large file must not block the loop
            response = await self._http.request(call.method, call.path, params=call.params, data=call.data or None,
                                                headers=call.headers, files=files)
            wait = _retry_after(response)
            if response.status_code != 503 or attempt == self.max_retries or wait is None:
                return _checked(response)
            await self._sleep(min(wait, self.max_retry_wait_s))
        raise AssertionError("unreachable")

    async def convert(self, file: FileInput, *, filename: str | None = None, mode: str | None = None,
                      pages: str | None = None, dpi: int | None = None, images: str | None = None,
                      chunking: str | None = None, max_tokens: int | None = None,
                      on_progress: ProgressCallback | None = None) -> ConversionResult:
        call = _Call("POST", "/ocr/pdf", data=_options(mode, pages, dpi, images, chunking, max_tokens), file=file,
                     filename=filename, headers={"Accept": "application/json"})
        response = await self._send(call)
        if response.status_code == 202:
            job = await self.wait(response.json()["job_id"], on_progress=on_progress)
            result = await self.result(job.job_id)
            if chunking is not None:
                chunks = await self.chunks(job.job_id, chunking=chunking, max_tokens=max_tokens)
                result = ConversionResult.from_json({**result.raw, "chunks": chunks.raw}, job_id=job.job_id)
            return result
        return ConversionResult.from_json(response.json())

    async def submit(self, file: FileInput, *, filename: str | None = None, mode: str | None = None,
                     pages: str | None = None, dpi: int | None = None, images: str | None = None,
                     idempotency_key: str | None = None, callback_url: str | None = None) -> Job:
        data = _options(mode, pages, dpi, images)
        if callback_url:
            data["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._send(_Call("POST", "/jobs", data=data, headers=headers, file=file, filename=filename))
        return Job.from_json(response.json())

    async def get_job(self, job_id: str) -> Job:
        return Job.from_json((await self._send(_Call("GET", f"/jobs/{job_id}"))).json())

    async def wait(self, job_id: str, *, on_progress: ProgressCallback | None = None) -> Job:
        follower = _Follower(Job(job_id=job_id, status="queued"), on_progress)
        failures = 0
        while True:
            try:
                async with self._http.stream("GET", f"/jobs/{job_id}/events", headers=follower.headers()) as response:
                    if response.status_code == 503 and failures < self.reconnects:
                        failures += 1
                        await self._sleep(min(_retry_after(response) or 1.0, self.max_retry_wait_s))
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error(response)
                    async for event, data, event_id in _aparse_sse(response.aiter_lines()):
                        if follower.feed(event, data, event_id):
                            return follower.job
            except (httpx.TransportError, httpx.RemoteProtocolError):
                pass
            failures += 1
            if failures > self.reconnects:
                raise ApiError(0, "stream_lost", f"lost the event stream of job {job_id} {failures} times")
            await self._sleep(min(0.5 * failures, 5.0))

    async def result(self, job_id: str) -> ConversionResult:
        response = await self._send(_Call("GET", f"/jobs/{job_id}/result", params={"format": "json"}))
        return ConversionResult.from_json(response.json(), job_id=job_id)

    async def markdown(self, job_id: str) -> str:
        return (await self._send(_Call("GET", f"/jobs/{job_id}/result", params={"format": "markdown"}))).text

    async def chunks(self, job_id: str, *, chunking: str = "hybrid", max_tokens: int | None = None) -> ChunkSet:
        params = {"format": "chunks", **_options(None, None, None, None, chunking, max_tokens)}
        return ChunkSet.from_json((await self._send(_Call("GET", f"/jobs/{job_id}/result", params=params))).json())

    async def download_zip(self, job_id: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.part")
        async with self._http.stream("GET", f"/jobs/{job_id}/result", params={"format": "zip"}) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            with open(tmp, "wb") as fh:
                async for chunk in response.aiter_bytes():
                    fh.write(chunk)
        os.replace(tmp, dest)
        return dest

    async def cancel(self, job_id: str) -> Job | None:
        response = await self._send(_Call("DELETE", f"/jobs/{job_id}"))
        return None if response.status_code == 204 else Job.from_json(response.json())


async def _aparse_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str, str | None]]:
    """`_parse_sse` over an async line stream (the framing rules are the sync parser's, fed a line at a time)."""
    pending: list[str] = []
    async for line in lines:
        pending.append(line)
        if not line:
            for item in _parse_sse(pending):
                yield item
            pending = []
