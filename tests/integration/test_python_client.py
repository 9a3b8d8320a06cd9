"""The Python client (client/, `pip install ./client`) against the real server, sync and async: conversion with
chunks, a job followed through its events with progress, results, the zip, cancel; and, against a scripted
transport, Retry-After on 503 and a resumed event stream."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import anyio
import httpx
import pytest
from paddleocr_vl_client import ApiError, AsyncClient, Client, ConversionResult, Job

from tests import pdfgen
from tests.server_process import ServerProcess

KEY = "client-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("server"), {"API_KEY": KEY}).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory):
    return pdfgen.text_pdf(tmp_path_factory.mktemp("docs") / "doc.pdf", pages=3)


def test_sync_client_converts_a_file_with_chunks(server, pdf):
    with Client(server.url, api_key=KEY) as client:
        result = client.convert(pdf, mode="text", chunking="hierarchical", max_tokens=40)
    assert isinstance(result, ConversionResult)
    assert pdfgen.TITLE in result.markdown and [p.page for p in result.pages] == [1, 2, 3]
    assert result.pages[0].blocks[0].bbox[2] > 0 and result.request_id
    assert result.chunks is not None and result.chunks.tokenizer == "cl100k_base"
    assert all(chunk.tokens <= 40 for chunk in result.chunks.chunks)


def test_sync_client_follows_a_job_with_progress_and_downloads_its_results(server, pdf, tmp_path):
    seen: list[Job] = []
    with Client(server.url, api_key=KEY) as client:
        job = client.submit(pdf, mode="text", idempotency_key="client-test-1")
        final = client.wait(job.job_id, on_progress=seen.append)
        result = client.result(job.job_id)
        markdown = client.markdown(job.job_id)
        chunks = client.chunks(job.job_id, max_tokens=64)
        archive = client.download_zip(job.job_id, tmp_path / "out.zip")
        deleted = client.cancel(job.job_id)
        with pytest.raises(ApiError) as gone:
            client.get_job(job.job_id)
    assert final.status == "succeeded" and final.pages_done == 3
    assert seen[-1].status == "succeeded" and seen[-1] == final
    assert result.markdown == markdown and result.job_id == job.job_id
    assert chunks.chunking == "hybrid" and all(c.tokens <= 64 for c in chunks.chunks)
    assert {"result.md", "result.json"} <= set(zipfile.ZipFile(archive).namelist())
    assert deleted is None and gone.value.status == 404 and gone.value.type == "not_found"


def test_wrong_key_and_bad_options_raise_api_error_with_the_server_message(server, pdf):
    with Client(server.url, api_key="wrong") as client, pytest.raises(ApiError) as denied:
        client.convert(pdf)
    assert denied.value.status == 401
    with Client(server.url, api_key=KEY) as client, pytest.raises(ApiError) as bad:
        client.convert(pdf, mode="sideways")
    assert bad.value.status == 422 and bad.value.message.startswith("mode: must be one of")


def test_async_client_converts_and_follows_a_job(server, pdf):
    async def go():
        seen: list[Job] = []
        async with AsyncClient(server.url, api_key=KEY) as client:
            result = await client.convert(pdf.read_bytes(), filename="doc.pdf", mode="text")
            job = await client.submit(io.BytesIO(pdf.read_bytes()), filename="doc.pdf", mode="text")
            final = await client.wait(job.job_id, on_progress=seen.append)
            chunks = await client.chunks(job.job_id, chunking="hierarchical")
        return result, final, chunks, seen

    result, final, chunks, seen = anyio.run(go)
    assert pdfgen.TITLE in result.markdown
    assert final.status == "succeeded" and seen and seen[-1].finished
    assert chunks.chunking == "hierarchical" and chunks.chunks


# --- scripted transports: what a live server cannot be made to do on cue -------------------------------------

JOB = {"job_id": "job-12345678", "status": "running", "pages_done": 1, "pages_total": 2}


def test_503_is_retried_after_its_retry_after():
    answers = iter([httpx.Response(503, headers={"Retry-After": "3"}, json={"error": {"type": "overloaded",
                                                                                        "message": "busy"}}),
                    httpx.Response(202, json={**JOB, "status": "queued"})])
    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return next(answers)

    slept: list[float] = []
    with Client("http://svc", transport=httpx.MockTransport(handler)) as client:
        client._sleep = slept.append  # type: ignore[assignment]
        job = client.submit(b"%PDF-1.4 body", filename="a.pdf")
    assert job.status == "queued" and slept == [3.0]
    assert len(sent) == 2 and all(b"%PDF-1.4 body" in body for body in sent)  # the file is sent again


def test_a_503_past_max_retries_raises_with_its_retry_after():
    busy = httpx.Response(503, headers={"Retry-After": "1"}, json={"error": {"type": "overloaded", "message": "b"}})
    with Client("http://svc", transport=httpx.MockTransport(lambda r: busy), max_retries=2) as client:
        client._sleep = lambda _s: None  # type: ignore[assignment]
        with pytest.raises(ApiError) as exc:
            client.get_job("job-12345678")
    assert exc.value.status == 503 and exc.value.retry_after_s == 1.0


def test_wait_reconnects_when_the_event_stream_drops_and_keeps_progress():
    import json

    def sse(*events: tuple[str, dict]) -> bytes:
        return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()

    streams = iter([
        sse(("status", JOB)),  # the connection ends before the final status
        sse(("status", JOB), ("page", {"job_id": JOB["job_id"], "page": 2, "pages_done": 2, "pages_total": 2}),
            ("status", {**JOB, "status": "succeeded", "pages_done": 2})),
    ])
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=next(streams))

    seen: list[tuple[str, int]] = []
    with Client("http://svc", transport=httpx.MockTransport(handler)) as client:
        client._sleep = lambda _s: None  # type: ignore[assignment]
        final = client.wait(JOB["job_id"], on_progress=lambda j: seen.append((j.status, j.pages_done)))
    assert calls == 2 and final.status == "succeeded"
    assert seen == [("running", 1), ("running", 1), ("running", 2), ("succeeded", 2)]
