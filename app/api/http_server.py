"""The HTTP connection layer under the app: uvicorn's h11 protocol with the bounds a hostile client needs.

uvicorn times out an idle keep-alive connection, but cancels that timer at the first byte of a request, so a
client that trickles header bytes keeps its connection (and a file descriptor) as long as it likes. Here:

- `HEADER_TIMEOUT_S`: the request line and headers must be complete this long after the connection opens or
  the previous response ends; otherwise 408 and the connection is closed.
- `MAX_HEADER_KB`: bound on the request line plus headers (h11's `max_incomplete_event_size`); past it, 431.
- Requests h11 cannot parse (a bare CR in a header, a broken request line) get 400.

These answers are written here, before any ASGI app runs, so they are built in the service's JSON error shape
by hand. After an error the connection is half-closed and what the client still sends is read and dropped for a
moment ("lingering close", as nginx does): closing with unread data makes the kernel send RST, and the client
would see a reset instead of the answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

log = logging.getLogger(__name__)

_LINGER_S = 2.0
_LINGER_BYTES = 8 * 1024 * 1024  # past the largest head a client could still be sending
_PHRASES = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedH11Protocol(H11Protocol):
    """H11Protocol plus a header deadline, JSON-shaped connection-level errors and a lingering close."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._seen_cycle: object = None
        self._lingering = 0  # bytes still accepted (and dropped) after an error; 0 = not lingering

    # --- header deadline -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingering = max(0, self._lingering - len(data))
            if not self._lingering:
                self.transport.close()
            return
        super().data_received(data)
        self._headers_done_check()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:
            # Answered before the body was read (408, 413, 503, 507...): uvicorn would keep reading the rest of
            # the body to reuse the connection, so a stalled client would keep it. Close instead.
            self._linger()
            return
        self._arm_header_timer()  # the next request on this keep-alive connection gets its own deadline
        self._headers_done_check()  # ...unless a pipelined one was already parsed

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _headers_done_check(self) -> None:
        # uvicorn starts a new RequestResponseCycle exactly when h11 has parsed a complete request head.
        if self.cycle is not None and self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
            self._cancel_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._on_header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being handled: its body has its own deadlines (app/api/limits.py)
        if self.conn.their_state is not h11.IDLE:
            self.transport.close()
            return
        if not self.conn.trailing_data[0]:
            # Not one byte of a new request: an idle keep-alive connection, uvicorn's own timer closes those.
            self.transport.close()
            return
        log.info("request headers not complete after %.0fs from %s; closing", self.header_timeout_s, self.client)
        self._send_error(408, "request_timeout", f"request headers not received within {self.header_timeout_s:g}s")

    # --- connection-level errors in our shape ----------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for anything h11 refuses; the buffer length tells a too-large head from a bad one.
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        if len(self.conn.trailing_data[0]) > limit:
            self._send_error(431, "headers_too_large", f"request line and headers exceed {limit // 1024} KiB")
        else:
            self._send_error(400, "bad_request", "malformed HTTP request (request line or headers)")

    def _send_error(self, status: int, type_: str, message: str) -> None:
        request_id = uuid.uuid4().hex
        body = json.dumps({"error": {"type": type_, "message": message, "request_id": request_id}}).encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
            b"x-request-id: %s\r\n\r\n" % (status, _PHRASES[status], len(body), request_id.encode())
        )
        # Written raw: h11 is in its ERROR state after a protocol error and would refuse to send anything.
        self.transport.write(head + body)
        self._linger()

    def _linger(self) -> None:
        self._cancel_header_timer()
        self._lingering = _LINGER_BYTES
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)


def http_protocol(settings: Settings) -> Any:
    """The protocol factory for `uvicorn.Config(http=...)`, carrying the settings' bounds."""
    return functools.partial(BoundedH11Protocol, header_timeout_s=settings.header_timeout_s)


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the connection-level bounds (see the module docstring)."""
    return {
        "http": http_protocol(settings),
        "h11_max_incomplete_event_size": settings.max_header_kb * 1024,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
    }
