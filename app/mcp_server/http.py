"""`/mcp` in the HTTP app: the MCP tools over Streamable HTTP, behind the same API-key middleware as every route.

Stateless mode: every POST carries a whole call (its progress notifications stream back on that response as SSE),
so any replica behind a load balancer can answer it and no session outlives a request. DNS-rebinding checks are
off: they guard servers that trust every local caller, while this one takes any Host it is deployed under and
authenticates with API_KEY like the rest of the API. The request body bound leaves room for a base64 document of
MAX_UPLOAD_MB.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings

from app.mcp_server.tools import Backend, build_mcp_server

MCP_PATH = "/mcp"
_JSON_OVERHEAD_BYTES = 1024 * 1024


def mount_mcp(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """Add the `/mcp` route to `app`; returns the context the app's lifespan must hold while serving."""
    settings = app.state.settings

    def backend() -> Backend:
        return Backend(services=app.state.services, lifecycle=app.state.lifecycle, stdio=False)

    server = build_mcp_server(backend)
    sub_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=settings.max_upload_bytes * 4 // 3 + _JSON_OVERHEAD_BYTES,
    )
    app.router.routes.extend(sub_app.routes)  # the route itself: a Mount would answer /mcp with a redirect
    return server.session_manager.run()
