"""Retrieval chunks over HTTP: `chunking`/`max_tokens` on POST /ocr/pdf and `format=chunks` on a job's result,
with the real pipeline (text mode) and the real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chunking.tokens import TOKENIZER_NAME
from app.main import create_app
from app.settings import Settings
from tests import pdfgen
from tests.api.conftest import running, wait_for, wait_ready

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pdfgen.text_pdf(tmp_path_factory.mktemp("pdfs") / "text3.pdf", pages=3)


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(_env_file=None, workers=1, output_dir=tmp_path_factory.mktemp("out"))  # type: ignore[call-arg]
    async with running(create_app(settings), timeout=300) as client:
        await wait_ready(client)
        yield client


def _file(pdf: Path) -> dict:
    return {"file": (pdf.name, pdf.read_bytes(), "application/pdf")}


async def test_ocr_pdf_with_chunking_adds_chunks_within_max_tokens(client, pdf):
    response = await client.post("/ocr/pdf", params={"mode": "text", "chunking": "hierarchical", "max_tokens": "40"},
                                 files=_file(pdf))
    assert response.status_code == 200, response.text
    chunks = response.json()["chunks"]
    assert chunks["chunking"] == "hierarchical" and chunks["max_tokens"] == 40
    assert chunks["tokenizer"] == TOKENIZER_NAME
    assert chunks["chunks"] and all(0 < c["tokens"] <= 40 for c in chunks["chunks"])
    assert {p for c in chunks["chunks"] for p in c["pages"]} == {1, 2, 3}
    first = chunks["chunks"][0]["blocks"][0]
    assert set(first) == {"page", "index", "type", "bbox"} and len(first["bbox"]) == 4


async def test_ocr_pdf_without_chunking_has_no_chunks(client, pdf):
    response = await client.post("/ocr/pdf", params={"mode": "text"}, files=_file(pdf))
    assert response.status_code == 200 and "chunks" not in response.json()


@pytest.mark.parametrize(("params", "message"), [
    ({"chunking": "semantic"}, "chunking: must be one of hierarchical, hybrid"),
    ({"chunking": "hybrid", "max_tokens": "8"}, "max_tokens: must be between 32 and 8192"),
    ({"chunking": "hybrid", "max_tokens": "lots"}, "max_tokens: must be an integer"),
    ({"max_tokens": "100"}, "max_tokens: only applies with chunking"),
])
async def test_bad_chunking_options_are_422_in_the_error_shape(client, pdf, params, message):
    response = await client.post("/ocr/pdf", params={"mode": "text", **params}, files=_file(pdf))
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_parameter"
    assert response.json()["error"]["message"].startswith(message)


async def test_job_result_as_chunks_matches_the_sync_chunks(client, pdf):
    sync = await client.post("/ocr/pdf", params={"mode": "text", "chunking": "hybrid", "max_tokens": "64"},
                             files=_file(pdf))
    submitted = await client.post("/jobs", files=_file(pdf), data={"mode": "text"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    async def done() -> bool:
        return (await client.get(f"/jobs/{job_id}")).json()["status"] == "succeeded"

    await wait_for(done, 120, "the job to succeed")
    response = await client.get(f"/jobs/{job_id}/result", params={"format": "chunks", "max_tokens": "64"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chunking"] == "hybrid"  # the default method
    assert [c["text"] for c in body["chunks"]] == [c["text"] for c in sync.json()["chunks"]["chunks"]]
    bad = await client.get(f"/jobs/{job_id}/result", params={"format": "chunks", "chunking": "nope"})
    assert bad.status_code == 422
