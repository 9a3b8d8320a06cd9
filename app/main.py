"""`create_app(settings)`: the FastAPI service. Routers live in app/api/routes.

`app.state` holds three things: `settings`, `services` (the typed components of app/services.py: pool, VLM client
and recognizer, jobs, S3, metrics) and `lifecycle` (startup/readiness/shutdown). The lifespan only starts the
background startup task, so the port opens at once; see app/lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api.auth import ApiKeyMiddleware
from app.api.error_handlers import install_error_handlers, render_internal_error
from app.api.limits import UploadSlots
from app.api.openapi import install_openapi
from app.api.routes import health, images, jobs, meta, ocr, pages, paddlex_serving, ui
from app.lifecycle import Lifecycle
from app.mcp_server.http import mount_mcp
from app.observability.logging import RequestContextMiddleware
from app.services import Services, build_services
from app.settings import Settings, load_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    lifecycle: Lifecycle = app.state.lifecycle
    services: Services = app.state.services
    lifecycle.start(services)
    try:
        async with app.state.mcp_session:  # /mcp's task group (app/mcp_server/http.py)
            yield
    finally:
        await lifecycle.stop(services)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="PaddleOCR-VL appliance", version=__version__, lifespan=lifespan,
        description="PDF in, Markdown and structured JSON out. Probes: /livez /readyz /startupz /health.",
    )
    services = build_services(settings, jobs=True)
    app.state.settings = settings
    app.state.services = services
    app.state.lifecycle = Lifecycle(settings)
    app.state.uploads = UploadSlots(settings.max_concurrent_uploads)  # app/api/limits.py

    install_error_handlers(app)
    app.add_middleware(ApiKeyMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics,  # outermost: ids, logs, 500s
                       internal_error=render_internal_error)

    app.include_router(health.router)
    app.include_router(meta.router)
    app.include_router(ocr.router)
    app.include_router(jobs.router)
    app.include_router(images.router)
    app.include_router(pages.router)
    app.include_router(ui.router)
    app.state.mcp_session = mount_mcp(app)  # the MCP tools at /mcp, behind the same API key
    paddlex_serving.install(app)  # PaddleX's serving API, its errors in PaddleX's envelope
    install_openapi(app, settings)  # statuses and bounds the routes enforce by hand (app/api/openapi.py)
    return app

