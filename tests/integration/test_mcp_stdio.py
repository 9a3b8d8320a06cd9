"""`python -m app mcp` as a desktop client starts it: the MCP SDK's stdio client spawns the command, lists the
tools and converts a local file under MCP_PATH_ROOTS and a base64 one; nothing but protocol reaches stdout."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests import pdfgen
from tests.server_process import ROOT


def _params(tmp_path: Path, roots: Path) -> StdioServerParameters:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "OUTPUT_DIR": str(tmp_path / "output"), "WORKERS": "1", "MCP_PATH_ROOTS": str(roots)}
    return StdioServerParameters(command=sys.executable, args=["-m", "app", "mcp"], env=env, cwd=str(tmp_path))


def test_stdio_server_lists_tools_and_converts_a_local_path_and_base64(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = pdfgen.text_pdf(docs / "doc.pdf", pages=2)
    outside = pdfgen.text_pdf(tmp_path / "outside.pdf", pages=1)
    (docs / "link.pdf").symlink_to(outside)

    async def go():
        progress: list[float] = []

        async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
            progress.append(done)

        async with Client(_params(tmp_path, docs), read_timeout_seconds=600) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            by_path = await client.call_tool("convert_document", {"path": str(pdf), "mode": "text"},
                                             progress_callback=on_progress)
            by_content = await client.call_tool("convert_document", {
                "content_base64": base64.b64encode(pdf.read_bytes()).decode(), "mode": "text", "output": "chunks"})
            escaped = await client.call_tool("convert_document", {"path": str(docs / "link.pdf")})
            missing = await client.call_tool("convert_document", {"path": str(docs / "nope.pdf")})
        return names, by_path, by_content, escaped, missing, progress

    names, by_path, by_content, escaped, missing, progress = anyio.run(go)
    assert names == {"convert_document", "submit_job", "get_job", "get_job_result", "cancel_job"}
    assert not by_path.is_error, by_path.content
    assert pdfgen.TITLE in by_path.content[0].text and by_path.structured_content["pages"] == [1, 2]
    assert sorted(progress) == [1, 2]
    assert by_content.structured_content["chunks"] and by_content.structured_content["tokenizer"] == "cl100k_base"
    assert escaped.is_error and escaped.content[0].text == "path: not under MCP_PATH_ROOTS"  # a symlink out
    assert missing.is_error and missing.structured_content["error"]["type"] == "not_found"
