"""/version and /metrics."""

from __future__ import annotations

import platform

from fastapi import APIRouter
from fastapi.responses import Response

from app import __version__
from app.api.deps import JobsDep, LifecycleDep, MetricsDep, PoolDep, SettingsDep
from app.observability.metrics import CONTENT_TYPE
from app.pipeline.layout import layout_model_name
from app.pipeline.recognize.languages import installed_languages

router = APIRouter(tags=["meta"])


@router.get("/version", summary="Version and profile of this service")
async def version(settings: SettingsDep) -> dict[str, object]:
    return {
        "version": __version__,
        "profile": settings.profile,
        "ocr_engine": settings.ocr_engine,
        "layout_engine": settings.layout_engine,
        "layout_model": layout_model_name(settings),
        # What `lang` may name here (PP-OCR's, and each Cyrillic language whose tesseract pack is installed).
        "languages": list(installed_languages()),
        "default_lang": settings.ocr_langs.strip().lower(),
        "vlm_model": settings.vlm_model_name if settings.vlm_enabled else None,
        "python": platform.python_version(),
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep, lifecycle: LifecycleDep, pool: PoolDep, jobs: JobsDep) -> Response:
    ready = lifecycle.accepting(pool).ok
    backlog = getattr(jobs.runner, "backlog_per_replica", None) if jobs is not None else None  # shared database
    return Response(metrics.render(pool, ready, backlog), media_type=CONTENT_TYPE)
