"""`python -m app mcp`: the MCP tools over stdio, for desktop agents that start the server themselves.

The whole service runs in this process as `serve` runs it (worker pool, jobs, settings from the env), minus the
HTTP port. The SDK's stdio transport points fd 1 at stderr while it serves, and the service starts inside it, so
logs and the workers' output never reach the protocol stream. Calls made while the models warm up wait for them.
A local `path` is read only under MCP_PATH_ROOTS.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app.commands import settings_from_env


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mcp", help="serve the MCP tools over stdio (settings from the env)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_env(prefix="mcp: ")
    if settings is None:
        return 2

    from app.main import create_app
    from app.mcp_server.tools import Backend, build_mcp_server
    from app.observability.logging import configure_logging

    configure_logging(settings)  # stderr
    app = create_app(settings)

    def backend() -> Backend:
        return Backend(services=app.state.services, lifecycle=app.state.lifecycle, stdio=True)

    @asynccontextmanager
    async def service(_server: Any) -> AsyncIterator[None]:
        async with app.router.lifespan_context(app):  # pool, jobs, lifecycle: started inside the stdio claim
            yield

    server = build_mcp_server(backend, lifespan=service)
    try:
        asyncio.run(server.run_stdio_async())
    except KeyboardInterrupt:
        return 130
    return 0
