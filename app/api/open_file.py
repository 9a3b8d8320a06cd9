"""Serving a job's files while a DELETE may remove them: open first, then answer from the open file.

Starlette's FileResponse takes a path: it stats it, sends the headers (Content-Length from the stat), and only
then opens it, so a file removed in between is a 500, or a 200 cut short of its Content-Length. Here the file is
opened before anything is sent: a file already gone is a 404, and a file opened in time is served whole, since
POSIX keeps an unlinked file's data readable while it is open (result files are written temp + rename, so the
open file is a complete one). No reference counts or deferred deletion are needed, and a DELETE never waits for a
slow reader; that works the same on every replica, whose files are their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.errors import NotFound

_CHUNK = 256 * 1024


def open_for_serving(path: Path, what: str) -> BinaryIO:
    """`path` opened for reading (blocking: call it in a thread); NotFound (404) when it is not there (any more)."""
    try:
        return path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound(f"{what} does not exist (any more)") from None


class OpenFileResponse(Response):
    """A response streamed from a file the route has already opened; the file is closed when the response ends
    (sent, or the client gone). Content-Length is the open file's size, and exactly that many bytes are sent."""

    def __init__(self, fh: BinaryIO, *, media_type: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(content=None, media_type=media_type, headers=headers)
        self.fh = fh
        self.size = os.fstat(fh.fileno()).st_size
        self.headers["content-length"] = str(self.size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            left = self.size
            while left > 0:
                chunk = await anyio.to_thread.run_sync(self.fh.read, min(_CHUNK, left))
                if not chunk:  # cannot happen to a file nobody rewrites in place; never send a short body quietly
                    raise OSError(f"{self.fh.name}: ended {left} bytes before its size")
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
            if self.size == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.fh.close()
        if self.background is not None:
            await self.background()


async def serve_file(path: Path, *, media_type: str, what: str, headers: dict[str, Any] | None = None
                     ) -> OpenFileResponse:
    """Open `path` (404 if it is gone) and answer with it; see the module docstring."""
    fh = await anyio.to_thread.run_sync(open_for_serving, path, what)
    try:
        return OpenFileResponse(fh, media_type=media_type, headers=headers)
    except BaseException:
        fh.close()
        raise
