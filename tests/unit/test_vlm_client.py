"""VlmClient against the fake vLLM (in-process over ASGI) and scripted transports for the failure paths."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import pytest
from PIL import Image

from app.errors import SidecarFailed, SidecarUnavailable
from app.models_manifest import VLM_MODEL
from app.vlm import client as client_module
from app.vlm import supervisor
from app.vlm.client import VlmClient
from app.vlm.prompts import chat_request
from tests.fakes.fake_vllm import build_app, parse_args

BASE = "http://sidecar:8080/v1"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(client_module, "BACKOFF_BASE_S", 0.01)


def jpeg(w: int = 40, h: int = 20) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "white").save(buf, "JPEG")
    return buf.getvalue()


def body(task: str = "ocr", **over):
    out = chat_request(model=VLM_MODEL, jpeg=jpeg(), task=task, max_completion_tokens=64)
    out.update(over)
    return out


def fake(*flags: str):
    app = build_app(parse_args(["--port", "1", "--answers", "echo", *flags]))
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def settings_for(make_settings, **over):
    over.setdefault("use_vlm_api", True)
    over.setdefault("vllm_url", BASE)
    over.setdefault("vlm_probe_interval_s", 0.05)
    return make_settings(**over)


async def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_wait_until_ready_succeeds_once_the_model_is_listed(make_settings):
    _, http = fake()
    vlm = VlmClient(settings_for(make_settings), http=http)
    assert vlm.status == "unavailable"
    await vlm.wait_until_ready(timeout_s=5)
    assert vlm.status == "available" and vlm.ready and vlm.last_error is None


@pytest.mark.anyio
async def test_wait_until_ready_times_out_while_health_is_503(make_settings):
    _, http = fake("--startup-delay-s", "60")
    vlm = VlmClient(settings_for(make_settings), http=http)
    with pytest.raises(SidecarUnavailable, match="not ready after"):
        await vlm.wait_until_ready(timeout_s=0.3)
    assert vlm.status == "unavailable" and "/health answered 503" in vlm.last_error


@pytest.mark.anyio
async def test_wrong_served_model_name_fails_fast_with_the_fix(make_settings):
    _, http = fake("--model-name", "PaddlePaddle/PaddleOCR-VL")
    vlm = VlmClient(settings_for(make_settings), http=http)
    started = time.monotonic()
    with pytest.raises(SidecarUnavailable, match="--served-model-name PaddleOCR-VL-1.6-0.9B"):  # the default VLM
        await vlm.wait_until_ready(timeout_s=30)
    assert time.monotonic() - started < 5


@pytest.mark.anyio
async def test_supervisord_fatal_is_reported_instead_of_waiting(make_settings, monkeypatch):
    async def fatal(*args, **kwargs):
        return supervisor.ProgramState("FATAL", "Exited too quickly (process log may have details)")

    monkeypatch.setattr(supervisor, "program_state", fatal)
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused"))))
    vlm = VlmClient(settings_for(make_settings), http=http)
    with pytest.raises(SidecarUnavailable, match="FATAL"):
        await vlm.wait_until_ready(timeout_s=30)
    assert "FATAL" in vlm.last_error and vlm.sidecar_state == "FATAL"
    assert not await vlm.check()
    assert vlm.snapshot()["sidecar_program_state"] == "FATAL"
    await vlm.aclose()


@pytest.mark.anyio
async def test_chat_returns_the_answer_of_a_valid_request(make_settings):
    _, http = fake()
    vlm = VlmClient(settings_for(make_settings), http=http)
    assert await vlm.chat(body("ocr")) == "region 40x20"
    assert vlm.counters["requests"] == 1 and vlm.counters["completion_tokens"] > 0


@pytest.mark.anyio
async def test_4xx_is_a_sidecar_failure_and_not_retried(make_settings):
    _, http = fake()
    vlm = VlmClient(settings_for(make_settings), http=http)
    with pytest.raises(SidecarFailed, match="400"):
        await vlm.chat(body(temperature=0.7))
    assert vlm.counters["requests"] == 1 and not vlm.breaker_open


@pytest.mark.anyio
async def test_5xx_is_retried_with_backoff_until_it_succeeds(make_settings):
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(500, json={"error": {"message": "boom", "type": "InternalServerError"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    vlm = VlmClient(settings_for(make_settings, vlm_retries=3), http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    assert await vlm.chat(body()) == "ok"
    assert calls["n"] == 3 and vlm.counters["retries"] == 2 and not vlm.breaker_open


@pytest.mark.anyio
async def test_persistent_5xx_opens_the_breaker_and_ends_in_sidecar_unavailable(make_settings):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(503)
        return httpx.Response(500, json={"error": {"message": "engine dead"}})

    vlm = VlmClient(settings_for(make_settings, vlm_retries=5, vlm_breaker_failures=3),
                    http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    with pytest.raises(SidecarUnavailable) as info:
        await vlm.chat(body())
    assert info.value.retry_after_s and info.value.retry_after_s > 0
    assert vlm.breaker_open and vlm.status == "unavailable" and "engine dead" in vlm.last_error
    assert vlm.counters["requests"] == 3  # the breaker stopped the retries at the threshold
    await vlm.aclose()


@pytest.mark.anyio
async def test_readiness_goes_false_on_connection_refused_and_returns_by_itself(make_settings):
    state = {"up": False, "chat_calls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("Connection refused")
        if request.url.path == "/health":
            return httpx.Response(200)
        state["chat_calls"] += 1
        return httpx.Response(200, json={"choices": [{"message": {"content": "back"}}]})

    vlm = VlmClient(settings_for(make_settings), http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    vlm.status = "available"
    with pytest.raises(SidecarUnavailable, match="Connection refused"):
        await vlm.chat(body())
    assert vlm.breaker_open and not vlm.ready
    # new work fails fast while open: no request reaches the transport
    with pytest.raises(SidecarUnavailable):
        await vlm.chat(body())
    assert state["chat_calls"] == 0
    state["up"] = True
    await wait_for(lambda: vlm.ready)
    assert await vlm.chat(body()) == "back"
    await vlm.aclose()


@pytest.mark.anyio
async def test_a_hung_sidecar_times_out_without_retrying(make_settings):
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.ReadTimeout("timed out", request=request)

    # (ASGITransport ignores timeouts, so the hang is scripted here; the integration suite hangs a real fake.)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    vlm = VlmClient(settings_for(make_settings, vlm_timeout_s=0.2, vlm_retries=3), http=http)
    started = time.monotonic()
    with pytest.raises(SidecarUnavailable, match="no answer within"):
        await vlm.chat(body())
    assert time.monotonic() - started < 2 and calls["n"] == 1


@pytest.mark.anyio
async def test_process_wide_semaphore_bounds_requests_in_flight(make_settings):
    app, http = fake("--latency-ms", "50")
    vlm = VlmClient(settings_for(make_settings, vlm_max_concurrency=3), http=http)
    answers = await asyncio.gather(*(vlm.chat(body()) for _ in range(10)))
    assert answers == ["region 40x20"] * 10
    stats = (await http.get("http://sidecar:8080/fake/stats")).json()
    assert stats["max_in_flight"] == 3


@pytest.mark.anyio
async def test_check_reports_health_and_disabled_client_never_calls_out(make_settings):
    _, http = fake()
    vlm = VlmClient(settings_for(make_settings), http=http)
    assert await vlm.check() and vlm.status == "available"
    off = VlmClient(make_settings(profile="cpu"), http=http)
    assert off.status == "disabled" and not await off.check()
    with pytest.raises(SidecarUnavailable, match="PROFILE=gpu"):
        await off.chat(body())
