"""Host allow-lists (CALLBACK_ALLOWED_HOSTS, FILE_URL_ALLOWED_HOSTS): one rule for every URL the service itself
calls on a client's behalf. An entry `host` allows that host on any port, `host:port` that port only; names
compare case-insensitively; an empty list allows nothing. URLs are read by httpx's parser, the one that sends the
request, so what is checked is what is called."""

from __future__ import annotations

import httpx


def parse_hosts(raw: str | None) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in (raw or "").split(",") if h.strip())


def url_host_allowed(url: str | httpx.URL, allowed: frozenset[str]) -> bool:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    host = parsed.host.lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return bool(host) and (host in allowed or f"{host}:{port}" in allowed)
