"""`create_app(settings)`: the FastAPI service. Routers live in app/api/routes; state lives on `app.state`.

`app.state`: settings, metrics, lifecycle (startup/readiness/shutdown), pool (PagePool), vlm (VlmClient or None)
and vl (its RegionRecognizer), jobs (JobManager or None), s3 (S3Uploader or None). The lifespan only starts the
background startup task, so the port opens at once; see app/lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api.auth import ApiKeyMiddleware
from app.api.error_handlers import install_error_handlers, render_internal_error
from app.api.routes import health, jobs, meta, ocr
from app.jobs.manager import JobManager
from app.lifecycle import Lifecycle
from app.observability.logging import RequestContextMiddleware
from app.observability.metrics import Metrics
from app.pipeline.pool import PagePool
from app.settings import Settings, load_settings
from app.storage.s3 import S3Uploader
from app.vlm.client import VlmClient
from app.vlm.recognizer import VlRecognizer


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    lifecycle: Lifecycle = app.state.lifecycle
    lifecycle.start(app)
    try:
        yield
    finally:
        await lifecycle.stop(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="PaddleOCR-VL appliance", version=__version__, lifespan=lifespan,
        description="PDF in, Markdown and structured JSON out. Probes: /livez /readyz /startupz /health.",
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.lifecycle = Lifecycle(settings)
    app.state.pool = PagePool(settings)
    app.state.vlm, app.state.vl = _make_vlm(settings)
    app.state.jobs = JobManager(settings, app.state.pool, vl=app.state.vl)
    app.state.s3 = S3Uploader(settings) if settings.s3_configured else None

    install_error_handlers(app)
    app.add_middleware(ApiKeyMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics,  # outermost: ids, logs, 500s
                       internal_error=render_internal_error)

    app.include_router(health.router)
    app.include_router(meta.router)
    app.include_router(ocr.router)
    app.include_router(jobs.router)
    return app


def _make_vlm(settings: Settings) -> tuple[VlmClient | None, VlRecognizer | None]:
    """The sidecar client and its recognizer, when `vl` mode is enabled (gpu profile or USE_VLM_API)."""
    if not settings.vlm_enabled:
        return None, None
    client = VlmClient(settings)
    return client, VlRecognizer(client, settings)
