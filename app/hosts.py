"""Host allow-lists (CALLBACK_ALLOWED_HOSTS, FILE_URL_ALLOWED_HOSTS): one rule for every URL the service itself
calls on a client's behalf. An entry `host` allows that host on any port, `host:port` that port only; names
compare case-insensitively; an empty list allows nothing."""

from __future__ import annotations

from urllib.parse import urlsplit


def parse_hosts(raw: str | None) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in (raw or "").split(",") if h.strip())


def url_host_allowed(url: str, allowed: frozenset[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return bool(host) and (host in allowed or f"{host}:{port}" in allowed)
