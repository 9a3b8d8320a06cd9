"""Probe states through a real lifespan: starting -> ready, startup failure, shutting down, wedged, sidecar down."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import SidecarUnavailable
from app.main import create_app
from tests.api.conftest import GatedPool, running, wait_for

pytestmark = pytest.mark.anyio

# The reference deployment's body less `models_path` and `output_dir`: /health is unauthenticated, and host
# paths belong in the log, not in an open endpoint.
REFERENCE_FIELDS = {"status", "models_present", "vllm_status", "vllm_url", "use_vlm_api", "s3_storage"}


def gated_app(settings):
    app = create_app(settings)
    app.state.services.pool = GatedPool()
    app.state.services.jobs = None  # jobs resume against the real pool; their lifecycle is tested in tests/api/test_jobs*
    return app


async def test_probes_say_starting_until_warmup_finishes_then_ready(make_settings):
    app = gated_app(make_settings(workers=1))
    pool: GatedPool = app.state.services.pool
    async with running(app) as client:
        assert (await client.get("/livez")).status_code == 200  # the port answers while models load
        startup = await client.get("/startupz")
        assert startup.status_code == 503 and "starting" in startup.json()["reason"]
        assert (await client.get("/readyz")).status_code == 503
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "starting" and health.json()["warm"] is False

        async def warming_up() -> bool:  # the models check runs first, in a thread: it may still be going
            body = (await client.get("/health")).json()
            return "warming up" in body["reason"] and body["status"] == "starting"

        await wait_for(warming_up, 10, "startup to reach the (gated) warm-up")
        assert (await client.get("/readyz")).status_code == 503

        pool.gate.set()

        async def started() -> bool:
            return (await client.get("/startupz")).status_code == 200

        await wait_for(started, 10, "/startupz 200")
        assert (await client.get("/readyz")).status_code == 200
        health = await client.get("/health")
        body = health.json()
        assert health.status_code == 200
        assert REFERENCE_FIELDS <= body.keys()
        assert body["status"] == "healthy" and body["warm"] is True and "reason" not in body
        assert body["models_present"] is True
        assert body["vllm_status"] == "disabled" and body["use_vlm_api"] is False
        assert body["s3_storage"] == "not_configured"
        assert "output_dir" not in body and "models_path" not in body
        # which models answer: no VLM with vl off, and the cpu profile's layout model
        assert body["models"] == {"vlm": None, "layout": "layout_cdla.onnx"}
    assert pool.started and pool.stopped and pool.stop_grace == app.state.settings.shutdown_grace_s


async def test_startup_failure_fails_every_probe_with_the_reason(make_settings):
    app = gated_app(make_settings(workers=1))
    pool: GatedPool = app.state.services.pool
    pool.fail_with = RuntimeError("onnx model file is corrupt")
    pool.gate.set()
    async with running(app) as client:
        async def failed() -> bool:
            return app.state.lifecycle.phase == "failed"

        await wait_for(failed, 10, "startup to fail")
        for path in ("/livez", "/startupz", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 503, path
            assert "onnx model file is corrupt" in response.json()["reason"]
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert "onnx model file is corrupt" in health.json()["reason"]


async def test_readiness_goes_false_at_shutdown_while_liveness_stays(make_settings, pdfs):
    app = gated_app(make_settings(workers=1))
    app.state.services.pool.gate.set()
    async with running(app) as client:
        await wait_for(lambda: _ok(client, "/readyz"), 10, "ready")
        app.state.lifecycle.begin_shutdown()
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "shutting down"
        assert (await client.get("/livez")).status_code == 200
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        refused = await client.post("/ocr/pdf", files={"file": ("a.pdf", pdfs["text1"].read_bytes())})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "not_ready"
        assert int(refused.headers["Retry-After"]) >= 1


async def test_requests_before_warmup_get_503_with_retry_after(make_settings, pdfs):
    app = gated_app(make_settings(workers=1))
    async with running(app) as client:
        response = await client.post("/ocr/pdf", files={"file": ("a.pdf", pdfs["text1"].read_bytes())})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "not_ready"
        assert "Retry-After" in response.headers


async def test_readyz_is_503_when_the_pool_is_unhealthy(make_settings):
    app = gated_app(make_settings(workers=1))
    app.state.services.pool.gate.set()
    async with running(app) as client:
        await wait_for(lambda: _ok(client, "/readyz"), 10, "ready")
        app.state.services.pool.is_healthy = False
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "pool" in ready.json()["reason"]
        assert (await client.get("/livez")).status_code == 200


async def test_health_is_degraded_but_200_when_workers_are_missing(make_settings):
    app = gated_app(make_settings(workers=2))
    app.state.services.pool.gate.set()
    app.state.services.pool.stats_value.workers = 2
    async with running(app) as client:
        await wait_for(lambda: _ok(client, "/readyz"), 10, "ready")
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and "1 of 2 workers" in health.json()["reason"]


async def test_livez_fails_when_the_heartbeat_stops(make_settings):
    app = gated_app(make_settings(workers=1))
    async with running(app) as client:
        assert (await client.get("/livez")).status_code == 200
        heartbeat = app.state.lifecycle._heartbeat_task
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        response = await client.get("/livez")
        assert response.status_code == 503 and "heartbeat" in response.json()["reason"]


class FakeVlm:
    """The VlmClient surface the lifecycle uses."""

    def __init__(self) -> None:
        self.status = "available"
        self.breaker_open = False
        self.last_error: str | None = None
        self.ready_gate = asyncio.Event()
        self.fail_startup = False
        self.closed = False
        self.checks = 0

    async def wait_until_ready(self, timeout_s: float) -> None:
        await self.ready_gate.wait()
        if self.fail_startup:
            raise SidecarUnavailable("sidecar never listed PaddleOCR-VL-0.9B")

    async def check(self) -> bool:
        self.checks += 1
        return self.status == "available"

    async def aclose(self) -> None:
        self.closed = True


async def test_startup_waits_for_the_sidecar_and_readiness_follows_it(make_settings):
    app = gated_app(make_settings(workers=1, use_vlm_api=True))
    vlm = FakeVlm()
    app.state.services.vlm, app.state.services.vl = vlm, None  # the vl warm-up pass needs the real pipeline: not the point here
    app.state.services.pool.gate.set()
    async with running(app) as client:
        await wait_for(lambda: _status(client, "/startupz", 503, "waiting for the VLM sidecar"), 10, "sidecar wait")
        # our side loaded and warmed up while the sidecar was still starting, not after it
        assert app.state.services.pool.started is True and app.state.lifecycle.warmup_s is not None
        assert app.state.lifecycle.warm is False  # warm means the vl path too, which needs the sidecar
        vlm.ready_gate.set()
        await wait_for(lambda: _ok(client, "/readyz"), 10, "ready")
        assert (await client.get("/health")).json()["vllm_status"] == "available"

        vlm.status, vlm.last_error = "unavailable", "connection refused"
        app.state.lifecycle._vlm_checked_at = 0.0  # let this probe re-check rather than reuse the last answer
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "connection refused" in ready.json()["reason"]
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["vllm_status"] == "unavailable"

        vlm.status, vlm.breaker_open = "available", True
        app.state.lifecycle._vlm_checked_at = 0.0
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "breaker" in ready.json()["reason"]
        assert (await client.get("/livez")).status_code == 200  # liveness never depends on the model
    assert vlm.closed


async def test_the_sidecar_failing_ends_startup_even_while_our_warm_up_is_still_running(make_settings):
    app = gated_app(make_settings(workers=1, use_vlm_api=True))
    vlm = FakeVlm()
    app.state.services.vlm, app.state.services.vl = vlm, None
    async with running(app) as client:  # the pool's gate stays shut: its warm-up never finishes
        await wait_for(lambda: _status(client, "/startupz", 503, "warming up"), 10, "warm-up under way")
        vlm.fail_startup = True
        vlm.ready_gate.set()
        await wait_for(lambda: _status(client, "/startupz", 503, "never listed"), 10, "startup failure")
        assert "waiting for the VLM sidecar" in (await client.get("/startupz")).json()["reason"]


async def test_health_and_version_name_the_served_models(make_settings):
    # the gpu image's settings: the VLM it serves and the layout model paired with it (app/models_manifest.py)
    for vlm, layout in (("PaddleOCR-VL-1.6-0.9B", "PP-DocLayoutV3"), ("PaddleOCR-VL-0.9B", "PP-DocLayoutV2")):
        app = gated_app(make_settings(workers=1, use_vlm_api=True, layout_engine="paddlex", vlm_model_name=vlm))
        app.state.services.vlm, app.state.services.vl = FakeVlm(), None
        async with running(app) as client:
            assert (await client.get("/health")).json()["models"] == {"vlm": vlm, "layout": layout}
            version = (await client.get("/version")).json()
            assert (version["vlm_model"], version["layout_model"]) == (vlm, layout)


async def test_sidecar_that_never_comes_up_fails_startup_loudly(make_settings):
    app = gated_app(make_settings(workers=1, use_vlm_api=True))
    vlm = FakeVlm()
    vlm.fail_startup = True
    vlm.ready_gate.set()
    app.state.services.vlm, app.state.services.vl = vlm, None
    async with running(app) as client:
        await wait_for(lambda: _status(client, "/startupz", 503, "never listed"), 10, "startup failure")
        health = await client.get("/health")
        assert health.json()["status"] == "unhealthy" and "never listed" in health.json()["reason"]


async def _ok(client, path: str) -> bool:
    return (await client.get(path)).status_code == 200


async def _status(client, path: str, code: int, text: str) -> bool:
    response = await client.get(path)
    return response.status_code == code and text in response.text
