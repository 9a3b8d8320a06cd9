"""The services factory (app/services.py): what it builds for each caller, and that closing stops everything."""

from __future__ import annotations

import pytest

from app.jobs.manager import JobManager
from app.runtime.pool import PagePool
from app.services import Services, build_services
from app.storage.s3 import S3Uploader
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_cpu_server_gets_a_pool_and_jobs_but_no_sidecar_client(make_settings) -> None:
    services = build_services(make_settings(profile="cpu", workers=3), jobs=True)
    try:
        assert isinstance(services.pool, PagePool) and services.pool.size == 3
        assert services.vlm is None and services.vl is None and services.s3 is None
        assert isinstance(services.jobs, JobManager) and services.jobs.pool is services.pool
        assert services.metrics is not None
    finally:
        await services.aclose(0)


@pytest.mark.anyio
async def test_a_sidecar_setting_builds_one_client_shared_by_the_recognizer_and_jobs(make_settings) -> None:
    services = build_services(make_settings(use_vlm_api=True, vllm_url="http://127.0.0.1:9/v1"), jobs=True)
    try:
        assert isinstance(services.vlm, VlmClient) and isinstance(services.vl, VlRecognizer)
        assert services.vl.client is services.vlm and services.jobs is not None and services.jobs.vl is services.vl
    finally:
        await services.aclose(0)
    assert services.vlm._closed  # aclose closed the client too


@pytest.mark.anyio
async def test_commands_choose_the_pool_size_and_whether_the_sidecar_is_needed(make_settings) -> None:
    settings = make_settings(use_vlm_api=True, vllm_url="http://127.0.0.1:9/v1", workers=8)
    services = build_services(settings, workers=2, preload_engines=False, vlm=False)
    try:
        assert services.pool.size == 2 and services.pool.preload_engines is False
        assert services.vlm is None and services.jobs is None  # jobs belong to the server only
    finally:
        await services.aclose(0)


def test_an_s3_bucket_gives_one_uploader(make_settings) -> None:
    services = build_services(make_settings(s3_bucket="results"))
    assert isinstance(services.s3, S3Uploader) and services.s3.bucket == "results"
    services.pool.close(0)


@pytest.mark.anyio
async def test_aclose_stops_jobs_before_the_pool_and_goes_on_when_one_fails(make_settings) -> None:
    calls: list[str] = []

    class Component:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        async def stop(self, grace_s: float) -> None:
            calls.append(f"{self.name}.stop({grace_s})")
            if self.fail:
                raise RuntimeError("boom")

        async def aclose(self) -> None:
            calls.append(f"{self.name}.aclose")

    services = Services(settings=make_settings(), metrics=None, pool=Component("pool"),  # type: ignore[arg-type]
                        vlm=Component("vlm"), jobs=Component("jobs", fail=True))  # type: ignore[arg-type]
    await services.aclose(2.5)
    assert calls == ["jobs.stop(2.5)", "pool.stop(2.5)", "vlm.aclose"]
