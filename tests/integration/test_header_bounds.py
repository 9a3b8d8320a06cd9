"""Oversized and malformed request heads against the real server: bounded by MAX_HEADER_KB, answered in the JSON
error shape (431 / 400) instead of uvicorn's plain text or a connection reset, and the server stays healthy."""

from __future__ import annotations

import httpx
import pytest

from tests.server_process import ServerProcess
from tests.slowsock import connect, parse_response, read_until_closed

MAX_HEADER_KB = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("heads"), {"MAX_HEADER_KB": str(MAX_HEADER_KB)}).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def send_head(server: ServerProcess, head: bytes) -> tuple[int, dict[str, str], dict]:
    sock = connect(server.port)
    try:
        sock.sendall(head)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and stop reading before the whole head is sent
    raw, _ = read_until_closed(sock, 10)
    assert raw, "connection closed without an answer"
    return parse_response(raw)


def assert_shape(status_headers_body, status: int, type_: str) -> None:
    status_got, headers, body = status_headers_body
    assert status_got == status and headers["content-type"].startswith("application/json")
    assert body["error"]["type"] == type_ and body["error"]["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"


def request_head(*headers: str) -> bytes:
    return ("GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


def test_one_megabyte_header_gets_431_in_the_json_shape(server):
    assert_shape(send_head(server, request_head("X-Big: " + "a" * 1024 * 1024)), 431, "headers_too_large")


def test_four_64k_headers_get_431_not_a_reset(server):
    heads = [f"X-H{i}: " + "b" * 64 * 1024 for i in range(4)]
    assert_shape(send_head(server, request_head(*heads)), 431, "headers_too_large")


def test_a_bare_cr_in_a_header_gets_400_in_the_json_shape(server):
    assert_shape(send_head(server, b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rb\r\n\r\n"), 400,
                 "bad_request")


def test_heads_under_the_bound_are_served_and_the_server_stays_healthy(server):
    response = httpx.get(f"{server.url}/livez", headers={"X-Fine": "c" * (MAX_HEADER_KB - 2) * 1024}, timeout=5)
    assert response.status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
