"""A PDF whose text is HTML and Markdown link syntax: its Markdown (the sync answer, a job's result.md and the
JSON's markdown) carries no raw tag and no `javascript:` link, while the blocks keep the text as it is."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from app.main import create_app
from tests import pdfgen
from tests.api.conftest import running, wait_for, wait_ready

pytestmark = pytest.mark.anyio

_RAW_TAG = re.compile(r"<\s*/?\s*(script|img|iframe|b)\b", re.IGNORECASE)
_LIVE_LINK = re.compile(r"(?<!\\)\]\(\s*javascript:", re.IGNORECASE)


def assert_inert(markdown: str) -> None:
    assert not _RAW_TAG.search(markdown), markdown
    assert not _LIVE_LINK.search(markdown), markdown
    html = MarkdownIt("commonmark").render(markdown)  # raw HTML allowed, as many renderers do
    assert not re.search(r"<(script|img|iframe|a)\b", html), html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown  # shown, not dropped


async def test_document_html_and_links_reach_the_markdown_as_text(make_settings, tmp_path):
    pdf = pdfgen.hostile_text_pdf(tmp_path / "hostile.pdf")
    files = {"file": ("hostile.pdf", pdf.read_bytes(), "application/pdf")}
    async with running(create_app(make_settings(workers=1)), timeout=120) as client:
        await wait_ready(client)
        for mode in ("text", "ocr"):
            response = await client.post("/ocr/pdf", params={"mode": mode}, files=files)
            assert response.status_code == 200, response.text
            body = response.json()
            assert_inert(body["markdown"])
            for page in body["pages"]:
                assert_inert(page["markdown"])
            texts = " ".join(b["text"] for p in body["pages"] for b in p["blocks"] if b["type"] != "table")
            assert "<script>alert(1)</script>" in texts  # the JSON's blocks keep what the page says

        job_id = (await client.post("/jobs", data={"mode": "text"}, files=files)).json()["job_id"]

        async def done() -> bool:
            return (await client.get(f"/jobs/{job_id}")).json()["status"] == "succeeded"

        await wait_for(done, 60, "the job")
        assert_inert((await client.get(f"/jobs/{job_id}/result", params={"format": "markdown"})).text)
        assert_inert((await client.get(f"/jobs/{job_id}/result")).json()["markdown"])
