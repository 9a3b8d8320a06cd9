"""/version and /metrics."""

from __future__ import annotations

import platform

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import __version__
from app.api.deps import LifecycleDep, MetricsDep, SettingsDep
from app.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["meta"])


@router.get("/version", summary="Version and profile of this service")
async def version(settings: SettingsDep) -> dict[str, object]:
    return {
        "version": __version__,
        "profile": settings.profile,
        "ocr_engine": settings.ocr_engine,
        "layout_engine": settings.layout_engine,
        "vlm_model": settings.vlm_model_name if settings.vlm_enabled else None,
        "python": platform.python_version(),
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, metrics: MetricsDep, lifecycle: LifecycleDep) -> Response:
    ready = lifecycle.accepting(request.app.state.pool).ok
    return Response(metrics.render(request.app.state.pool, ready), media_type=CONTENT_TYPE)
