"""VlRecognizer over the in-process fake vLLM: one request per region, official prompts, post-processed answers."""

from __future__ import annotations

import io
import json
import re

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


def _formula_crop(w: int = 200, h: int = 80) -> RegionCrop:
    """A formula region cut with a wide white margin around its ink (a 60x20 black bar at 70,30)."""
    image = Image.new("RGB", (w, h), "white")
    image.paste((0, 0, 0), (70, 30, 130, 50))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    return RegionCrop(page_index=0, region=Region(label="formula", bbox=(0.0, 0.0, w, h), kind="display_formula"),
                      jpeg=buf.getvalue())


@pytest.mark.anyio
async def test_formula_crops_are_trimmed_to_their_ink_before_they_are_sent(make_settings):
    vl, _ = recognizer(make_settings)
    (out,) = await vl.recognize([_formula_crop()])
    # the fake echoes the size it received: the ink box (JPEG edges may add a pixel), not the 200x80 crop
    w, h = (int(v) for v in re.search(r"w = (\d+), h = (\d+)", out.text).groups())
    assert 58 <= w <= 63 and 18 <= h <= 23, out.text


@pytest.mark.anyio
async def test_header_and_footer_images_are_never_sent(make_settings):
    vl, http = recognizer(make_settings)
    logo = RegionCrop(page_index=0, region=Region(label="header", bbox=(0, 0, 60, 30), kind="header_image"),
                      jpeg=crop("header").jpeg)
    words = RegionCrop(page_index=0, region=Region(label="header", bbox=(0, 0, 60, 30), kind="header"),
                       jpeg=crop("header").jpeg)
    out = await vl.recognize([logo, words])
    assert out[0] is logo.region and out[1].text == "region 60x30"
    assert (await http.get("http://sidecar/fake/stats")).json()["answered"] == 1


@pytest.mark.anyio
async def test_formula_numbers_lose_their_dollar_signs(make_settings):
    def sidecar(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "\\((3.1)\\)"}, "finish_reason": "stop"}]})

    settings = make_settings(use_vlm_api=True, vllm_url="http://sidecar/v1")
    vl = VlRecognizer(VlmClient(settings, http=httpx.AsyncClient(transport=httpx.MockTransport(sidecar))), settings)
    number = RegionCrop(page_index=0, region=Region(label="text", bbox=(0, 0, 60, 30), kind="formula_number"),
                        jpeg=crop("text").jpeg)
    plain = RegionCrop(page_index=0, region=Region(label="text", bbox=(0, 0, 60, 30), kind="text"),
                       jpeg=crop("text").jpeg)
    out = await vl.recognize([number, plain])
    assert out[0].text == "(3.1)"
    assert "$" in out[1].text  # only formula numbers are stripped


@pytest.mark.anyio
async def test_per_request_sampling_reaches_every_chat_request_and_leaves_the_service_recognizer_alone(make_settings):
    seen: list[dict] = []
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: _echo(request, seen)))
    settings = make_settings(use_vlm_api=True, vllm_url="http://sidecar/v1")
    service = VlRecognizer(VlmClient(settings, http=http), settings)
    tuned = service.with_sampling({"top_p": 0.8, "repetition_penalty": 1.2, "max_completion_tokens": 99})
    await tuned.recognize([crop("text"), crop("title")])
    await service.recognize([crop("text")])
    assert [(b["top_p"], b["repetition_penalty"], b["max_completion_tokens"]) for b in seen[:2]] == [(0.8, 1.2, 99)] * 2
    assert "top_p" not in seen[2] and seen[2]["max_completion_tokens"] == settings.vlm_max_completion_tokens


def _echo(request: httpx.Request, seen: list[dict]) -> httpx.Response:
    assert request.url.path.endswith("/chat/completions"), request.url
    seen.append(json.loads(request.content))
    return httpx.Response(200, json={"choices": [{"message": {"content": "words"}, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
