"""VlRecognizer over the in-process fake vLLM: one request per region, official prompts, post-processed answers."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from app.errors import SidecarUnavailable
from app.pipeline.page import RegionCrop
from app.pipeline.primitives import Region
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer
from tests.fakes.fake_vllm import build_app, parse_args


@pytest.fixture
def anyio_backend():
    return "asyncio"


def crop(label: str, page: int = 0, w: int = 60, h: int = 30) -> RegionCrop:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "white").save(buf, "JPEG")
    return RegionCrop(page_index=page, region=Region(label=label, bbox=(0.0, 0.0, w, h)), jpeg=buf.getvalue())


def recognizer(make_settings, *flags: str, **over) -> tuple[VlRecognizer, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(parse_args(["--port", "1", "--answers", "echo", *flags]))))
    settings = make_settings(use_vlm_api=True, vllm_url="http://sidecar/v1", **over)
    return VlRecognizer(VlmClient(settings, http=http), settings), http


@pytest.mark.anyio
async def test_regions_come_back_in_order_with_text_tables_and_formulas(make_settings):
    vl, http = recognizer(make_settings)
    crops = [crop("title", w=80), crop("table", w=90), crop("formula", w=70), crop("figure"), crop("text", page=1, w=50)]
    out = await vl.recognize(crops)
    assert [r.label for r in out] == ["title", "table", "formula", "figure", "text"]
    assert out[0].text == "region 80x30" and out[4].text == "region 50x30"
    assert out[1].html == "<table><tr><td>width</td><td>height</td></tr><tr><td>90</td><td>30</td></tr></table>"
    assert " ".join(out[2].text.split()) == "$$ w = 70, h = 30 $$"  # \[..\] became $$..$$ (official spacing)
    assert out[3] is crops[3].region  # figures are never sent
    stats = (await http.get("http://sidecar/fake/stats")).json()
    assert stats["answered"] == 4


@pytest.mark.anyio
async def test_charts_are_read_only_when_enabled(make_settings):
    vl, http = recognizer(make_settings, vlm_chart_recognition=True)
    out = await vl.recognize([crop("chart")])
    assert out[0].text == "region 60x30"
    vl_off, _ = recognizer(make_settings)
    assert (await vl_off.recognize([crop("chart")]))[0].text is None


@pytest.mark.anyio
async def test_one_failed_region_fails_the_call_with_sidecar_unavailable(make_settings):
    vl, http = recognizer(make_settings, "--error-rate", "1.0", vlm_retries=0, vlm_breaker_failures=2)
    with pytest.raises(SidecarUnavailable):
        await vl.recognize([crop("text") for _ in range(5)])
    assert vl.client.breaker_open


@pytest.mark.anyio
async def test_no_crops_means_no_requests(make_settings):
    vl, http = recognizer(make_settings)
    assert await vl.recognize([]) == []
    assert (await http.get("http://sidecar/fake/stats")).json()["requests"] == 0
