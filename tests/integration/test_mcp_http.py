"""The MCP tools at /mcp of the real server (`python -m app serve`), driven by the MCP SDK's own client over
Streamable HTTP: tool listing, conversion with progress, chunks, jobs, URLs, errors, API keys and metrics."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests import pdfgen
from tests.server_process import ServerProcess, free_port

KEY = "mcp-test-key"
OTHER_KEY = "another-key"
TOOLS = {"convert_document", "submit_job", "get_job", "get_job_result", "cancel_job"}


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves the test PDFs; /away redirects to a host that is not allowed, /again to a file on the same host."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://localhost:1/doc.pdf")
            self.end_headers()
            return
        if self.path == "/again":
            self.send_response(302)
            self.send_header("Location", "/doc.pdf")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    pdfgen.text_pdf(d / "doc.pdf", pages=3)
    return d


@pytest.fixture(scope="module")
def file_host(docs: Path) -> Iterator[str]:
    handler = lambda *a: _Files(*a, directory=str(docs))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _start(tmp: Path, **env: str) -> ServerProcess:
    server = ServerProcess(tmp, {"API_KEY": f"{KEY},{OTHER_KEY}", **env}).start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, file_host: str) -> Iterator[ServerProcess]:
    server = _start(tmp_path_factory.mktemp("server"), FILE_URL_ALLOWED_HOSTS=file_host)
    yield server
    server.stop()


def _client(server: ServerProcess, key: str = KEY) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(120.0))
    return Client(streamable_http_client(f"{server.url}/mcp", http_client=http))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_mcp_needs_the_api_key_like_every_route(server):
    response = httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers={"accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"


def test_client_lists_the_tools_and_converts_a_pdf_with_page_progress(server, docs):
    async def go():
        progress: list[tuple[float, float | None]] = []

        async def on_progress(done: float, total: float | None, _message: str | None) -> None:
            progress.append((done, total))

        async with _client(server) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("convert_document", {"content_base64": _b64(docs / "doc.pdf"),
                                                                 "filename": "doc.pdf", "mode": "text"},
                                            progress_callback=on_progress)
        return names, result, progress

    names, result, progress = run(go)
    assert names >= TOOLS
    assert not result.is_error, result.content
    assert pdfgen.TITLE in result.content[0].text
    assert result.structured_content["pages"] == [1, 2, 3]
    assert result.structured_content["markdown"] == result.content[0].text
    assert sorted(progress) == [(1, 3), (2, 3), (3, 3)]


def test_convert_document_answers_chunks_and_json(server, docs):
    async def go():
        async with _client(server) as client:
            chunks = await client.call_tool("convert_document", {
                "content_base64": _b64(docs / "doc.pdf"), "mode": "text", "output": "chunks",
                "chunking": "hierarchical", "max_tokens": 40})
            document = await client.call_tool("convert_document", {
                "content_base64": _b64(docs / "doc.pdf"), "mode": "text", "pages": "2", "output": "json"})
        return chunks, document

    chunks, document = run(go)
    assert not chunks.is_error, chunks.content
    body = chunks.structured_content
    assert body["tokenizer"] == "cl100k_base" and body["chunks"]
    assert all(c["tokens"] <= 40 and c["blocks"] for c in body["chunks"])
    assert [p["page"] for p in document.structured_content["pages"]] == [2]
    assert document.structured_content["pages"][0]["blocks"][0]["bbox"]


def test_errors_carry_the_http_message_and_shape_without_a_traceback(server, docs):
    http_answer = httpx.post(f"{server.url}/ocr/pdf", params={"mode": "sideways"},
                             headers={"Authorization": f"Bearer {KEY}"},
                             files={"file": ("doc.pdf", (docs / "doc.pdf").read_bytes(), "application/pdf")})
    assert http_answer.status_code == 422

    async def go():
        async with _client(server) as client:
            bad_mode = await client.call_tool("convert_document", {"content_base64": _b64(docs / "doc.pdf"),
                                                                   "mode": "sideways"})
            not_pdf = await client.call_tool("convert_document", {"content_base64": base64.b64encode(b"hello").decode()})
            not_b64 = await client.call_tool("convert_document", {"content_base64": "%%%"})
            two = await client.call_tool("convert_document", {"content_base64": "AA==", "url": "http://x/y.pdf"})
            local = await client.call_tool("convert_document", {"path": "/etc/passwd"})
        return bad_mode, not_pdf, not_b64, two, local

    bad_mode, not_pdf, not_b64, two, local = run(go)
    assert bad_mode.is_error
    assert bad_mode.content[0].text == http_answer.json()["error"]["message"]
    assert bad_mode.structured_content["error"]["type"] == "invalid_parameter"
    assert not_pdf.is_error and not_pdf.structured_content["error"]["type"] == "unsupported_media_type"
    assert not_b64.content[0].text == "content_base64: not valid base64"
    assert two.content[0].text == "give exactly one of content_base64, url or path"
    assert local.content[0].text.startswith("path: only the stdio server reads local files")
    for result in (bad_mode, not_pdf, not_b64, two, local):
        assert "Traceback" not in result.content[0].text
    assert httpx.get(f"{server.url}/readyz").status_code == 200  # the server stays healthy


def test_url_documents_come_only_from_allowed_hosts_and_never_by_a_redirect_elsewhere(server, file_host):
    async def go():
        async with _client(server) as client:
            fetched = await client.call_tool("convert_document", {"url": f"http://{file_host}/doc.pdf",
                                                                  "mode": "text"})
            same_host = await client.call_tool("convert_document", {"url": f"http://{file_host}/again",
                                                                    "mode": "text"})
            elsewhere = await client.call_tool("convert_document", {"url": f"http://{file_host}/away"})
            not_listed = await client.call_tool("convert_document", {"url": "http://localhost:9/doc.pdf"})
            missing = await client.call_tool("convert_document", {"url": f"http://{file_host}/nothing.pdf"})
        return fetched, same_host, elsewhere, not_listed, missing

    fetched, same_host, elsewhere, not_listed, missing = run(go)
    assert not fetched.is_error and pdfgen.TITLE in fetched.content[0].text
    assert not same_host.is_error
    assert elsewhere.is_error and "redirects to another host" in elsewhere.content[0].text
    assert not_listed.content[0].text == "url: host 'localhost' is not in FILE_URL_ALLOWED_HOSTS"
    assert missing.content[0].text == "url: the URL answered HTTP 404"


def test_jobs_through_tools_belong_to_the_calling_key(server, docs):
    async def go():
        async with _client(server) as client:
            submitted = await client.call_tool("submit_job", {"content_base64": _b64(docs / "doc.pdf"),
                                                              "filename": "doc.pdf", "mode": "text"})
            job_id = submitted.structured_content["job_id"]
            for _ in range(600):
                job = await client.call_tool("get_job", {"job_id": job_id})
                if job.structured_content["status"] in ("succeeded", "failed", "cancelled"):
                    break
                await anyio.sleep(0.1)
            result = await client.call_tool("get_job_result", {"job_id": job_id, "output": "chunks"})
            async with _client(server, OTHER_KEY) as other:
                foreign = await other.call_tool("get_job", {"job_id": job_id})
            deleted = await client.call_tool("cancel_job", {"job_id": job_id})
            gone = await client.call_tool("get_job", {"job_id": job_id})
        return submitted, job, result, foreign, deleted, gone

    submitted, job, result, foreign, deleted, gone = run(go)
    assert submitted.structured_content["status"] in ("queued", "running", "succeeded")
    assert job.structured_content["status"] == "succeeded" and job.structured_content["pages_done"] == 3
    assert result.structured_content["chunking"] == "hybrid" and result.structured_content["chunks"]
    assert foreign.is_error and foreign.structured_content["error"]["type"] == "not_found"
    assert deleted.structured_content == {"job_id": submitted.structured_content["job_id"], "deleted": True}
    assert gone.structured_content["error"]["type"] == "not_found"


def test_tool_calls_are_counted_in_metrics(server, docs):
    async def go():
        async with _client(server) as client:
            await client.call_tool("get_job", {"job_id": "nonexistent-job"})

    run(go)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mcp_tool_calls_total{outcome="not_found",tool="get_job"}' in metrics
    assert 'mcp_tool_calls_total{outcome="ok",tool="convert_document"}' in metrics


def test_a_long_conversion_becomes_a_job_and_the_tool_waits_with_progress(tmp_path, docs):
    server = _start(tmp_path, MAX_SYNC_WAIT_S="0.001")  # every conversion is handed to a job at once
    try:
        async def go():
            progress: list[tuple[float, float | None]] = []

            async def on_progress(done: float, total: float | None, _message: str | None) -> None:
                progress.append((done, total))

            async with _client(server) as client:
                result = await client.call_tool("convert_document", {"content_base64": _b64(docs / "doc.pdf"),
                                                                     "mode": "text"}, progress_callback=on_progress)
                job = await client.call_tool("get_job", {"job_id": result.structured_content["job_id"]})
            return result, job, progress

        result, job, progress = run(go)
    finally:
        server.stop()
    assert not result.is_error, result.content
    assert pdfgen.TITLE in result.content[0].text and result.structured_content["pages"] == [1, 2, 3]
    assert job.structured_content["status"] == "succeeded"
    assert progress and max(done for done, _ in progress) == 3
