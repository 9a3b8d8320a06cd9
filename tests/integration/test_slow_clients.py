"""Slow and stalling clients against the real server (uvicorn on a port, real sockets): header deadline, upload
deadline and minimum rate, the cap on concurrent uploads, and no temp file left behind on any of those exits."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.server_process import ServerProcess, wait_until
from tests.slowsock import connect, multipart_head, parse_response, read_until_closed

HEADER_TIMEOUT_S = 1.5
GRACE_S = 1.0
DEADLINE_S = 6.0
SLOTS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("slow-clients")
    server = ServerProcess(workdir, {
        "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "UPLOAD_RATE_GRACE_S": str(GRACE_S),
        "UPLOAD_MIN_KB_PER_S": "16", "UPLOAD_DEADLINE_S": str(DEADLINE_S), "MAX_CONCURRENT_UPLOADS": str(SLOTS),
    }).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def uploads(server: ServerProcess) -> list[str]:
    directory = server.output_dir / ".uploads"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def assert_error(raw: bytes, status: int, type_: str) -> dict[str, str]:
    got, headers, body = parse_response(raw)
    assert got == status, raw[:300]
    assert headers["content-type"].startswith("application/json")
    assert body["error"]["type"] == type_ and body["error"]["request_id"] == headers["x-request-id"]
    return headers


def assert_healthy(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200


def test_trickled_headers_get_408_and_the_connection_closed(server):
    sock = connect(server.port)
    sock.sendall(b"POST /ocr/pdf HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        while time.monotonic() - started < 30 and not _readable(sock):
            sock.sendall(b"X-Slow: a\r\n")  # one header line every 200 ms: the head never ends
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw, _ = read_until_closed(sock, 5)
    assert_error(raw, 408, "request_timeout")
    assert time.monotonic() - started < HEADER_TIMEOUT_S + 3
    assert_healthy(server)


def _readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def test_a_connection_that_never_sends_a_byte_is_closed(server):
    sock = connect(server.port)
    raw, took = read_until_closed(sock, 10)
    assert raw == b"" and took < HEADER_TIMEOUT_S + 2


def test_stalled_upload_gets_408_and_its_temp_file_is_removed(server):
    sock = connect(server.port)
    sock.sendall(multipart_head(server.port, declared_length=150 * 1024 * 1024))
    wait_until(lambda: len(uploads(server)) == 1, 10, "the temp file of the stalled upload")
    raw, took = read_until_closed(sock, 15)
    headers = assert_error(raw, 408, "request_timeout")
    assert "UPLOAD_MIN_KB_PER_S" in parse_response(raw)[2]["error"]["message"] and headers
    assert took < GRACE_S + 3
    wait_until(lambda: uploads(server) == [], 5, "the temp file to be removed")
    assert_healthy(server)


def test_upload_below_the_minimum_rate_gets_408(server):
    sock = connect(server.port)
    sock.sendall(multipart_head(server.port, declared_length=10 * 1024 * 1024))
    started = time.monotonic()
    raw = b""
    try:
        while time.monotonic() - started < 15:  # 2 KB every 0.25 s = 8 KB/s, half the minimum
            sock.sendall(b"0" * 2048)
            time.sleep(0.25)
            if _readable(sock):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw, _ = read_until_closed(sock, 10)
    assert_error(raw, 408, "request_timeout")
    assert time.monotonic() - started < GRACE_S + 6
    wait_until(lambda: uploads(server) == [], 5, "the temp file to be removed")


def test_uploads_past_the_cap_get_503_with_retry_after_then_slots_free_up(server, tmp_path):
    stalled = []
    for _ in range(SLOTS):
        sock = connect(server.port)
        sock.sendall(multipart_head(server.port, declared_length=50 * 1024 * 1024))
        stalled.append(sock)
    wait_until(lambda: len(uploads(server)) == SLOTS, 10, f"{SLOTS} uploads in progress")

    response = httpx.post(f"{server.url}/ocr/pdf", files={"file": ("x.pdf", b"%PDF-1.7\n" * 10)}, timeout=10)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "overloaded" and int(response.headers["Retry-After"]) >= 1

    for sock in stalled:  # each one is cut off by the rate check, and takes its temp file with it
        assert_error(read_until_closed(sock, 15)[0], 408, "request_timeout")
    wait_until(lambda: uploads(server) == [], 5, "every temp file to be removed")
    response = httpx.post(f"{server.url}/ocr/pdf", files={"file": ("x.pdf", b"not a pdf at all")}, timeout=10)
    assert response.status_code == 415  # a slot again: the upload is read and judged
    assert_healthy(server)


def test_a_client_that_vanishes_mid_upload_leaves_no_temp_file(server):
    sock = connect(server.port)
    sock.sendall(multipart_head(server.port, declared_length=20 * 1024 * 1024) + b"0" * 65536)
    wait_until(lambda: len(uploads(server)) == 1, 10, "the temp file of the upload")
    sock.close()
    wait_until(lambda: uploads(server) == [], 5, "the temp file to be removed")
    assert_healthy(server)
