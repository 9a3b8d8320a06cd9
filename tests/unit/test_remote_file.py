"""app/storage/remote_file.py: only listed hosts, redirects only to listed hosts, size and time bounds, and the
partial file removed on every failure (httpx.MockTransport stands in for the remote servers)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.errors import InvalidParameter, UploadTooLarge
from app.storage.remote_file import MAX_REDIRECTS, download, is_url

pytestmark = pytest.mark.anyio

PDF = b"%PDF-1.7\n" + b"x" * 5000


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False)


def serve(routes: dict[str, httpx.Response]):
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return routes.get(str(request.url), httpx.Response(404))

    handler.asked = asked  # type: ignore[attr-defined]
    return handler


def test_only_http_urls_are_urls():
    assert is_url("https://files.example/a.pdf") and is_url("HTTP://x/y")
    assert not is_url("JVBERi0xLjcK") and not is_url("ftp://x/y") and not is_url("file:///etc/passwd")


async def test_a_listed_host_is_fetched_and_a_redirect_on_the_same_host_followed(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="files.example, cdn.example:8443")
    handler = serve({"https://files.example/doc": httpx.Response(302, headers={"location": "/d.pdf"}),
                     "https://files.example/d.pdf": httpx.Response(200, content=PDF),
                     "https://files.example/cdn": httpx.Response(302, headers={"location": "https://cdn.example:8443/d.pdf"})})
    dest = tmp_path / "d.pdf"
    async with client(handler) as http:
        assert await download("https://files.example/doc", dest, settings, http=http) == len(PDF)
        assert dest.read_bytes() == PDF
        with pytest.raises(InvalidParameter, match="redirects to another host"):  # even to another listed host
            await download("https://files.example/cdn", tmp_path / "e.pdf", settings, http=http)
    assert handler.asked == ["https://files.example/doc", "https://files.example/d.pdf", "https://files.example/cdn"]


@pytest.mark.parametrize(("hosts", "url", "message"), [
    (None, "https://files.example/a.pdf", "FILE_URL_ALLOWED_HOSTS is empty"),
    ("files.example", "https://evil.example/a.pdf", "'evil.example' is not in FILE_URL_ALLOWED_HOSTS"),
    ("files.example:443", "http://files.example/a.pdf", "not in FILE_URL_ALLOWED_HOSTS"),  # port 80 is not listed
    ("files.example", "https://user:pw@files.example/a.pdf", "credentials"),
])
async def test_urls_outside_the_list_are_refused_before_any_request(make_settings, tmp_path, hosts, url, message):
    handler = serve({})
    async with client(handler) as http:
        with pytest.raises(InvalidParameter, match=message):
            await download(url, tmp_path / "x", make_settings(file_url_allowed_hosts=hosts), http=http)
    assert handler.asked == []


async def test_a_redirect_to_an_unlisted_host_is_not_followed(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="files.example")
    handler = serve({"https://files.example/a": httpx.Response(301, headers={"location": "http://169.254.169.254/"})})
    async with client(handler) as http:
        with pytest.raises(InvalidParameter, match="redirects to another host"):
            await download("https://files.example/a", tmp_path / "x", settings, http=http)
    assert handler.asked == ["https://files.example/a"]


async def test_redirect_loops_errors_and_oversized_files_fail_cleanly(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="files.example", max_upload_mb=0.001)  # 1048 bytes
    loop = serve({"https://files.example/loop": httpx.Response(302, headers={"location": "/loop"}),
                  "https://files.example/big": httpx.Response(200, content=PDF),
                  "https://files.example/gone": httpx.Response(410)})
    dest = tmp_path / "x"
    async with client(loop) as http:
        with pytest.raises(InvalidParameter, match=f"more than {MAX_REDIRECTS} redirects"):
            await download("https://files.example/loop", dest, settings, http=http)
        with pytest.raises(InvalidParameter, match="answered HTTP 410"):
            await download("https://files.example/gone", dest, settings, http=http)
        with pytest.raises(UploadTooLarge):
            await download("https://files.example/big", dest, settings, http=http)
    assert not dest.exists()


async def test_a_download_slower_than_its_deadline_is_abandoned(make_settings, tmp_path):
    async def slow_body():
        yield b"%PDF-1.7\n"
        await asyncio.sleep(30)
        yield b"never"

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=slow_body())

    settings = make_settings(file_url_allowed_hosts="files.example", file_url_timeout_s=0.3)
    dest = tmp_path / "x"
    async with client(handler) as http:
        with pytest.raises(InvalidParameter, match="FILE_URL_TIMEOUT_S=0.3"):
            await download("https://files.example/slow", dest, settings, http=http)
    assert not dest.exists()
