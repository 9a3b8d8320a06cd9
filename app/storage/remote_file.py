"""A client's file named by URL, downloaded to a local path: PaddleX's `file` field, and any other door (MCP)
that accepts a URL instead of bytes.

Off unless FILE_URL_ALLOWED_HOSTS lists the host (app/hosts.py's rule). The service only ever calls listed
hosts: a redirect is followed (at most `MAX_REDIRECTS`) only to the same host as the URL given, so an allowed
host cannot bounce us to another address, listed or not. The body is streamed to disk and counted, so a file past MAX_UPLOAD_MB
is a 413 as soon as it passes the limit, and the whole download (redirects included) must finish within
FILE_URL_TIMEOUT_S. Every failure is a typed AppError (422 for a URL we cannot use, 413, 507) with a message
that names the setting to change; the partial file is removed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from app import __version__
from app.errors import InvalidParameter
from app.hosts import parse_hosts, url_host_allowed
from app.settings import Settings
from app.storage.disk import as_insufficient_storage, is_disk_full, require_free_space
from app.storage.upload_size import check_upload_size

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_URL_CHARS = 2000
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_url(value: str) -> bool:
    """Whether a `file` value names a URL rather than carrying base64 (which never contains `://`)."""
    head = value[:16].lower()
    return head.startswith("http://") or head.startswith("https://")


def check_url(url: str, settings: Settings, *, field: str = "file") -> str:
    """`url` if the service may fetch it, else InvalidParameter (422) saying why not."""
    allowed = parse_hosts(settings.file_url_allowed_hosts)
    if not allowed:
        raise InvalidParameter(f"{field}: URLs are off on this service (FILE_URL_ALLOWED_HOSTS is empty); "
                               "send the file's bytes as base64 instead")
    if len(url) > MAX_URL_CHARS:
        raise InvalidParameter(f"{field}: URL longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(f"{field}: must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidParameter(f"{field}: credentials in the URL are not accepted")
    if not url_host_allowed(url, allowed):
        raise InvalidParameter(f"{field}: host {parts.hostname!r} is not in FILE_URL_ALLOWED_HOSTS")
    return url


async def download(url: str, dest: Path, settings: Settings, *, http: httpx.AsyncClient | None = None,
                   field: str = "file") -> int:
    """Download `url` into `dest` (created or truncated) and return its size in bytes; see the module docstring
    for the rules. `http` is injected by tests (httpx.MockTransport); its redirect following must be off."""
    check_url(url, settings, field=field)
    client = http or httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                       headers={"User-Agent": f"paddleocr-vl-appliance/{__version__}"})
    try:
        async with asyncio.timeout(settings.file_url_timeout_s):
            return await _follow(client, url, dest, settings, field)
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise InvalidParameter(f"{field}: the download did not finish within FILE_URL_TIMEOUT_S="
                               f"{settings.file_url_timeout_s:g}") from None
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise InvalidParameter(f"{field}: the download failed ({type(exc).__name__})") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        if http is None:
            await client.aclose()


async def _follow(client: httpx.AsyncClient, url: str, dest: Path, settings: Settings, field: str) -> int:
    for _ in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", url) as response:
            if response.status_code in _REDIRECTS:
                target = urljoin(url, response.headers.get("location", ""))
                if urlsplit(target).hostname != urlsplit(url).hostname:
                    raise InvalidParameter(f"{field}: the URL redirects to another host "
                                           f"({urlsplit(target).hostname!r}); only same-host redirects are followed")
                url = check_url(target, settings, field=field)
                continue
            if response.status_code != 200:
                raise InvalidParameter(f"{field}: the URL answered HTTP {response.status_code}")
            return await _save(response, dest, settings)
    raise InvalidParameter(f"{field}: more than {MAX_REDIRECTS} redirects")


async def _save(response: httpx.Response, dest: Path, settings: Settings) -> int:
    declared = response.headers.get("content-length", "")
    check_upload_size(settings, int(declared) if declared.isdigit() else 0, "file")
    require_free_space(settings, int(declared) if declared.isdigit() else 0)
    size = 0
    try:
        with dest.open("wb") as out:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                check_upload_size(settings, size, "file")
                out.write(chunk)  # one network read at a time: memory stays flat whatever the file's size
    except OSError as exc:
        if is_disk_full(exc):
            raise as_insufficient_storage("the downloaded file") from None
        raise
    log.info("downloaded %d bytes from %s", size, urlsplit(str(response.url)).hostname)
    return size
