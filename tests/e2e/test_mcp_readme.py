"""The README's MCP client config for stdio, used as a desktop client would: the SDK's stdio client starts the
configured command from this checkout and converts a file under the configured MCP_PATH_ROOTS."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests import pdfgen

ROOT = Path(__file__).resolve().parents[2]


def readme_mcp_config() -> dict:
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    configs = [json.loads(block) for block in blocks if '"mcpServers"' in block and '"command"' in block]
    assert len(configs) == 1, "the README shows one stdio MCP config"
    return configs[0]["mcpServers"]["paddleocr-vl"]


def test_the_readme_stdio_config_starts_the_server_and_converts_a_local_pdf(tmp_path):
    config = readme_mcp_config()
    command = config["command"].replace("/path/to/clone", str(ROOT))
    assert Path(command).is_file() and os.access(command, os.X_OK)
    pdf = pdfgen.text_pdf(tmp_path / "report.pdf", pages=1)
    env = {**config["env"], "MCP_PATH_ROOTS": str(tmp_path), "WORKERS": "1", "OUTPUT_DIR": str(tmp_path / "out"),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    async def go():
        async with Client(StdioServerParameters(command=command, env=env), read_timeout_seconds=900) as client:
            return await client.call_tool("convert_document", {"path": str(pdf), "mode": "text"})

    result = anyio.run(go)
    assert not result.is_error, result.content
    assert pdfgen.TITLE in result.content[0].text
