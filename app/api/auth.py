"""Optional API key: `Authorization: Bearer <key>` (or `token <key>`, as PaddleX's clients send it) or
`X-API-Key: <key>`, compared in constant time.

Applied as ASGI middleware so it covers every path (API routes, /docs, unknown URLs) except the probes, which
a platform calls without credentials, /metrics unless METRICS_REQUIRE_AUTH is set, and the web UI's page and
static files under /ui (they hold no data; the page asks for the key and sends it with every API call). The key
is a SecretStr and headers are never logged.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.error_handlers import shaped_error_response
from app.settings import Settings

PROBE_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/health"})
UI_PATHS = frozenset({"/", "/ui"})
UI_PREFIX = "/ui/"


def presented_key(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():  # `token`: PaddleX/AI Studio clients
        return token.strip()
    return headers.get("x-api-key") or None


def key_matches(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Whether `presented` is one of `keys`; every key is compared, in constant time, whatever matches."""
    if presented is None:
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8"))
    return matched


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = settings.api_keys
        self.public = set(PROBE_PATHS | UI_PATHS)
        if not settings.metrics_require_auth:
            self.public.add("/metrics")

    def _is_public(self, path: str) -> bool:
        return path in self.public or path.startswith(UI_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or self._is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if key_matches(presented_key(Headers(scope=scope)), self.keys):
            await self.app(scope, receive, send)
            return
        response = shaped_error_response(
            scope, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
