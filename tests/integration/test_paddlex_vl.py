"""PaddleX's /layout-parsing in the GPU profile's shape: the service with a (fake) vLLM sidecar reads every region
with the VLM (`vl` mode), per-request sampling reaches the sidecar, and the answer still validates with
PaddleX's own models. The real-vLLM tier repeats the first check against vLLM itself (tests/real_vllm)."""

from __future__ import annotations

import base64

import httpx
import pytest
from rapidfuzz import fuzz

from app.main import create_app
from tests import pdfgen
from tests.api.conftest import running, wait_ready
from tests.integration.test_vl_mode import fake_vllm, vl_settings  # noqa: F401 - the fixture is used by name
from tests.paddlex_schemas import validate_failure, validate_success

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_layout_parsing_reads_through_the_sidecar_in_vl_mode(fake_vllm, make_settings, tmp_path):  # noqa: F811
    url = fake_vllm("--answers", "ocr")
    pdf = pdfgen.table_pdf(tmp_path / "table.pdf")
    app = create_app(vl_settings(make_settings, url))
    async with running(app, timeout=300) as client:
        await wait_ready(client)
        payload = {"file": base64.b64encode(pdf.read_bytes()).decode(), "fileType": 0, "visualize": False,
                   "repetitionPenalty": 1.05, "maxNewTokens": 512, "minPixels": 3136}
        response = await client.post("/layout-parsing", json=payload)
        assert response.status_code == 200, response.text
        body = response.json()
        validate_success(body)
        (page,) = body["result"]["layoutParsingResults"]
        settings = page["prunedResult"]["model_settings"]
        assert settings["mode"] == "vl" and settings["page_source"] == "vl"
        # sampling reached the sidecar; the pixel bounds are fixed server-side (vLLM refuses them per request)
        assert settings["ignored_request_fields"] == ["minPixels"]
        tables = [b for b in page["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
        assert tables and "<table>" in tables[0]["block_content"]
        for row in pdfgen.TABLE_ROWS[1:]:
            assert row[0] in page["markdown"]["text"]
        assert fuzz.partial_ratio(pdfgen.TABLE_CAPTION, page["markdown"]["text"]) > 80
        stats = httpx.get(f"{url}/fake/stats").json()
        assert stats["answered"] >= 2

        # temperature > 0 goes to the sidecar as asked; the fake keeps the official client's temperature 0 and
        # refuses it, which must come back as PaddleX's envelope with our 502, not a 500
        hot = await client.post("/layout-parsing", json={**payload, "temperature": 0.7})
        assert hot.status_code == 502, hot.text
        assert validate_failure(hot.json()).errorCode == 502
