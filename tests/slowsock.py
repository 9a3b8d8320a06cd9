"""Raw sockets for the slow-client tests: send exactly what a stalling or trickling client would, read the answer."""

from __future__ import annotations

import json
import socket
import time


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection; and the seconds that took."""
    sock.settimeout(timeout_s)
    started = time.monotonic()
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data), time.monotonic() - started


def parse_response(raw: bytes) -> tuple[int, dict[str, str], dict]:
    """(status, lower-cased headers, JSON body) of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body) if body else {}


def multipart_head(port: int, declared_length: int, boundary: str = "b") -> bytes:
    """Request head plus the start of a `file` part: what a client sends before its PDF bytes."""
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n").encode()
    head = (f"POST /ocr/pdf HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {declared_length}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    return head + part
