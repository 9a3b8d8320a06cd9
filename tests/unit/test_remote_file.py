"""app/storage/remote_file.py: which URLs are fetched, redirects, and the size and time bounds, against a scripted
transport (the live path is in tests/integration/test_mcp_http.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.errors import InvalidParameter, RequestTimeout, UploadTooLarge
from app.storage.remote_file import check_file_url, fetch_to_file


def _fetch(settings, url: str, handler, dest):
    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch_to_file(url, dest, settings, client=client)

    return asyncio.run(go())


@pytest.mark.parametrize(("hosts", "url", "message"), [
    (None, "http://docs.example/a.pdf", "url: fetching documents by URL is off"),
    ("docs.example", "ftp://docs.example/a.pdf", "url: must be an absolute http(s) URL"),
    ("docs.example", "http://user:pw@docs.example/a.pdf", "url: credentials in the URL are not accepted"),
    ("docs.example:8080", "http://docs.example/a.pdf", "url: host 'docs.example' is not in FILE_URL_ALLOWED_HOSTS"),
    ("docs.example", "http://169.254.169.254/latest", "url: host '169.254.169.254' is not in"),
])
def test_urls_outside_the_allow_list_are_refused(make_settings, hosts, url, message):
    with pytest.raises(InvalidParameter) as exc:
        check_file_url(url, make_settings(file_url_allowed_hosts=hosts))
    assert exc.value.message.startswith(message)


def test_a_host_with_its_port_allows_that_port_only(make_settings):
    settings = make_settings(file_url_allowed_hosts="docs.example:8080, other.example")
    assert check_file_url("http://docs.example:8080/a.pdf", settings)
    assert check_file_url("https://other.example:9999/a.pdf", settings)


def test_a_document_is_streamed_to_the_file(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="docs.example")
    dest = tmp_path / "doc.pdf"
    size = _fetch(settings, "http://docs.example/a.pdf", lambda r: httpx.Response(200, content=b"%PDF-1.7 x"), dest)
    assert size == 10 and dest.read_bytes() == b"%PDF-1.7 x"


def test_a_body_over_max_upload_is_cut_off_and_removed(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="docs.example", max_upload_mb=0.001)
    dest = tmp_path / "doc.pdf"

    async def body():
        for _ in range(2):
            yield b"x" * 600

    def chunked(_request):  # no Content-Length: only counting the bytes can stop it
        return httpx.Response(200, content=body())

    with pytest.raises(UploadTooLarge):
        _fetch(settings, "http://docs.example/a.pdf", chunked, dest)
    assert not dest.exists()
    with pytest.raises(UploadTooLarge):
        _fetch(settings, "http://docs.example/a.pdf",
               lambda r: httpx.Response(200, headers={"Content-Length": "5000000"}, content=b""), dest)


def test_redirects_stay_on_the_host_and_are_bounded(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="docs.example,other.example")
    dest = tmp_path / "doc.pdf"
    hops = {"/a": "/b", "/b": "http://docs.example/c.pdf"}

    def handler(request):
        path = request.url.path
        if path in hops:
            return httpx.Response(302, headers={"Location": hops[path]})
        if path == "/elsewhere":
            return httpx.Response(302, headers={"Location": "http://other.example/c.pdf"})
        if path == "/loop":
            return httpx.Response(302, headers={"Location": "/loop"})
        return httpx.Response(200, content=b"%PDF")

    assert _fetch(settings, "http://docs.example/a", handler, dest) == 4
    with pytest.raises(InvalidParameter, match="redirected to another host"):
        _fetch(settings, "http://docs.example/elsewhere", handler, dest)  # even to another allowed host
    with pytest.raises(InvalidParameter, match="more than 5 redirects"):
        _fetch(settings, "http://docs.example/loop", handler, dest)


def test_a_fetch_past_the_timeout_is_408(make_settings, tmp_path):
    settings = make_settings(file_url_allowed_hosts="docs.example", file_url_timeout_s=0.2)

    async def slow(_request):
        await asyncio.sleep(5)
        return httpx.Response(200, content=b"%PDF")

    with pytest.raises(RequestTimeout, match="FILE_URL_TIMEOUT_S=0.2"):
        _fetch(settings, "http://docs.example/a.pdf", slow, tmp_path / "doc.pdf")
