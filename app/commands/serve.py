"""`python -m app serve`: the HTTP service on HOST:PORT (what `make run` and the image start).

Invalid settings print one line and exit 2. SIGTERM makes readiness false at once, then uvicorn stops
accepting, lets in-flight requests finish for up to SHUTDOWN_GRACE_S, and the lifespan stops the workers.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from app.commands import settings_from_env

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="serve the HTTP API (HOST/PORT and every setting from the env)")
    parser.set_defaults(func=run)


class GracefulServer(uvicorn.Server):
    """uvicorn.Server whose signal handler makes readiness false before uvicorn starts draining."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_env(prefix="")
    if settings is None:
        return 2

    from app.api.http_server import uvicorn_limits
    from app.main import create_app
    from app.observability.logging import configure_logging

    configure_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # configure_logging already set up JSON lines
        access_log=False,  # the request middleware logs one line per request, with its id, probes left out
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
        lifespan="on",
        **uvicorn_limits(settings),  # header deadline and size, keep-alive; errors in our shape
    )
    server = GracefulServer(config, app.state.lifecycle.begin_shutdown)
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown; a no-op handler underneath makes that
    # re-raise harmless, so a clean drain exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    log.info("serving on http://%s:%d (profile=%s, workers=%d)", settings.host, settings.port, settings.profile,
             settings.workers)
    server.run()
    return 0
