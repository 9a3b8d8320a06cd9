"""Probes. `/health` is the reference deployment's body (one URL for all three platform probes: 200 only when
ready); `/startupz`, `/readyz`, `/livez` are the split probes for platforms that can use them. None of them is
authenticated, and none waits on a model: they read the lifecycle state, and at most ask the VLM sidecar's
`/health` with a short timeout."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import __version__
from app.api.deps import LifecycleDep, PoolDep, ServicesDep, SettingsDep, VlmDep
from app.lifecycle import Verdict
from app.pipeline.layout import layout_model_name
from app.runtime.pool import PagePool
from app.storage.disk import DiskState, disk_state
from app.storage.s3 import S3Uploader

router = APIRouter(tags=["probes"])


def _probe(verdict: Verdict) -> JSONResponse:
    if verdict.ok:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "fail", "reason": verdict.reason}, status_code=503)


@router.get("/livez", summary="Liveness: the process is not wedged")
async def livez(lifecycle: LifecycleDep) -> JSONResponse:
    return _probe(lifecycle.liveness())


@router.get("/startupz", summary="Startup: models loaded and warmed up")
async def startupz(lifecycle: LifecycleDep) -> JSONResponse:
    return _probe(lifecycle.startup())


@router.get("/readyz", summary="Readiness: warm and able to take work")
async def readyz(services: ServicesDep, lifecycle: LifecycleDep) -> JSONResponse:
    return _probe(await lifecycle.readiness(services))


@router.get("/health", summary="Reference deployment health body; 200 only when ready")
async def health(services: ServicesDep, settings: SettingsDep, lifecycle: LifecycleDep, pool: PoolDep,
                 vlm: VlmDep) -> JSONResponse:
    ready = await lifecycle.readiness(services)
    alive = lifecycle.liveness()
    disk = await asyncio.to_thread(disk_state, settings)  # statvfs can stall on a network volume
    if ready.ok:
        status, reason = "healthy", None
        degraded = _degradation(pool, services.s3, disk)
        if degraded:
            status, reason = "degraded", degraded
    elif lifecycle.phase == "starting" and not lifecycle.shutting_down:
        status, reason = "starting", ready.reason
    else:
        status, reason = "unhealthy", ready.reason if alive.ok else alive.reason
    # No filesystem paths here (models, output dir): /health is unauthenticated; the paths are in the startup log.
    body: dict[str, Any] = {
        "status": status,
        "models_present": lifecycle.models_present,
        # Which models answer: the VLM the sidecar serves (None with vl off) and the layout model beside it.
        "models": {"vlm": settings.vlm_model_name if settings.vlm_enabled else None,
                   "layout": layout_model_name(settings)},
        "vllm_status": vlm.status if vlm is not None else "disabled",
        "vllm_url": settings.vllm_url,
        "use_vlm_api": settings.vlm_enabled,
        "s3_storage": services.s3.status if services.s3 is not None else "not_configured",
        "version": __version__,
        "uptime_s": round(lifecycle.uptime_s, 1),
        "warm": lifecycle.warm,
        "disk": disk.view(),
    }
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=200 if ready.ok else 503)


def _degradation(pool: PagePool, s3: S3Uploader | None, disk: DiskState) -> str | None:
    """Ready, but something the operator should look at: lost workers being replaced, S3 failing, a disk so full
    that new work gets 507 (it clears by itself once space is freed)."""
    problems = []
    try:
        stats = pool.stats()
        if stats.alive_workers < stats.workers:
            problems.append(f"{stats.alive_workers} of {stats.workers} workers alive")
    except Exception:  # stats are advisory here; readiness already asked the pool whether it is healthy
        pass
    if not disk.ok:
        problems.append(f"output disk low: {disk.free_mb:.0f} MB free, new work refused below {disk.min_free_mb:g} MB")
    if s3 is not None and s3.status == "error":
        problems.append(f"S3 storage error: {s3.last_error}")
    return "; ".join(problems) or None
