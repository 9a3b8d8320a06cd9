"""Fetch a document named by URL into a local file, for the doors that take a `url` instead of the bytes.

Only hosts in FILE_URL_ALLOWED_HOSTS are contacted (`host` = any port, `host:port` = that port; empty = off),
so the service cannot be pointed at its own network (SSRF). Redirects are followed by hand, at most
`_MAX_REDIRECTS`, and only to the same host as the URL the caller gave. The body is streamed to disk and cut off
past MAX_UPLOAD_MB (413); the whole fetch, redirects included, must end within FILE_URL_TIMEOUT_S (408).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import AppError, InvalidParameter, RequestTimeout, UploadTooLarge
from app.settings import Settings

log = logging.getLogger(__name__)

_MAX_REDIRECTS = 5
_MAX_URL_CHARS = 2000


def allowed_hosts(raw: str | None) -> frozenset[str]:
    """A comma-separated allow-list of `host` or `host:port` entries, lower-cased."""
    return frozenset(h.strip().lower() for h in (raw or "").split(",") if h.strip())


def host_allowed(url: str, allowed: frozenset[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return bool(host) and (host in allowed or f"{host}:{port}" in allowed)


def check_file_url(url: str, settings: Settings) -> str:
    """The URL if the service may fetch it, else InvalidParameter (422) saying why not."""
    allowed = allowed_hosts(settings.file_url_allowed_hosts)
    if not allowed:
        raise InvalidParameter("url: fetching documents by URL is off on this service (FILE_URL_ALLOWED_HOSTS is empty)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter("url: must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidParameter("url: credentials in the URL are not accepted")
    if len(url) > _MAX_URL_CHARS:
        raise InvalidParameter(f"url: longer than {_MAX_URL_CHARS} characters")
    if not host_allowed(url, allowed):
        raise InvalidParameter(f"url: host {parts.hostname!r} is not in FILE_URL_ALLOWED_HOSTS")
    return url


async def fetch_to_file(url: str, dest: Path, settings: Settings, *, client: httpx.AsyncClient | None = None) -> int:
    """Download `url` into `dest` (created or truncated); returns the byte count. On any failure `dest` is removed
    and an AppError says why: 422 refused URL or redirect, 413 too large, 408 too slow, 400 the host's error."""
    check_file_url(url, settings)
    own = client is None
    http = client or httpx.AsyncClient(follow_redirects=False)
    try:
        async with asyncio.timeout(settings.file_url_timeout_s):
            return await _fetch(http, url, dest, settings)
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise RequestTimeout(f"url: not fetched within FILE_URL_TIMEOUT_S={settings.file_url_timeout_s:g}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        if own:
            await http.aclose()


async def _fetch(http: httpx.AsyncClient, url: str, dest: Path, settings: Settings) -> int:
    origin = (urlsplit(url).hostname or "").lower()
    limit = settings.max_upload_bytes
    current = url
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            async with http.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if (urlsplit(target).hostname or "").lower() != origin or urlsplit(target).scheme not in (
                            "http", "https"):
                        raise InvalidParameter(f"url: redirected to another host ({urlsplit(target).hostname!r}); "
                                               "refused")
                    current = target
                    continue
                if response.status_code != 200:
                    raise AppError(f"url: the host answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise UploadTooLarge(f"url: the document exceeds MAX_UPLOAD_MB={settings.max_upload_mb:g}")
                size = 0
                with open(dest, "wb") as fh:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise UploadTooLarge(f"url: the document exceeds MAX_UPLOAD_MB={settings.max_upload_mb:g}")
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                log.info("fetched %d bytes from host %s", size, origin)
                return size
    except httpx.HTTPError as exc:
        raise AppError(f"url: cannot fetch the document: {type(exc).__name__}") from None
    raise InvalidParameter(f"url: more than {_MAX_REDIRECTS} redirects")
