"""Streaming multipart upload: the PDF goes to a temp file chunk by chunk, never whole into memory.

The body is read from `request.stream()` and fed to python-multipart's incremental parser; bytes are counted as
they arrive, so a client that sends no Content-Length (chunked) still gets its 413 as soon as it passes
MAX_UPLOAD_MB. The temp file is named after the request id; the client's filename is kept only as a string.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.api.limits import UploadSlots, paced
from app.conversion.source import SourceFile, stored_file
from app.errors import AppError, InvalidParameter, NotAPdf, UploadTooLarge
from app.settings import Settings
from app.storage.disk import as_insufficient_storage, is_disk_full, require_free_space
from app.storage.upload_size import check_upload_size

FILE_FIELD = "file"
# Room for the multipart framing and the small form fields on top of the file itself.
_OVERHEAD_BYTES = 1024 * 1024
_MAX_FIELD_BYTES = 4096


@dataclass
class Upload(SourceFile):
    """The stored file (an image already its PDF wrapper) and the form's other fields."""

    fields: dict[str, str] = field(default_factory=dict)


def uploads_dir(settings: Settings) -> Path:
    path = settings.output_dir / ".uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Collector:
    """python-multipart callbacks: the `file` part to disk, other parts as small strings."""

    def __init__(self, settings: Settings, request_id: str) -> None:
        self.settings = settings
        self.request_id = request_id
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.filename: str | None = None
        self.size = 0
        self._file: IO[bytes] | None = None
        self._field_name: str | None = None
        self._field_buf = bytearray()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._field_name = None
        self._field_buf = bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").strip().lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD:
            if self.path is not None:
                raise InvalidParameter("send exactly one 'file' part")
            raw_name = params.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace") if raw_name is not None else None
            fd, tmp = tempfile.mkstemp(dir=uploads_dir(self.settings), prefix=f"{self.request_id}-", suffix=".pdf")
            self.path = Path(tmp)
            self._file = os.fdopen(fd, "wb")
        else:
            self._field_name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.size += end - start
            check_upload_size(self.settings, self.size)
            # A chunk is at most one network read (64 KiB): writing it to the page cache is cheaper than a
            # thread hop, and it keeps memory flat whatever the file size.
            self._file.write(data[start:end])
        elif self._field_name is not None:
            self._field_buf.extend(data[start:end])
            if len(self._field_buf) > _MAX_FIELD_BYTES:
                raise InvalidParameter(f"form field {self._field_name!r} is too long")

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._field_name:
            self.fields[self._field_name] = self._field_buf.decode("utf-8", "replace").strip()
            self._field_name = None

    def abort(self) -> None:
        try:
            if self._file is not None:
                self._file, file = None, self._file
                file.close()  # flushes what is buffered: on a full disk that raises ENOSPC once more
        except OSError:
            pass
        finally:
            if self.path is not None:
                self.path.unlink(missing_ok=True)


async def receive_pdf_upload(request: Request, settings: Settings, request_id: str) -> Upload:
    """Stream the multipart body of `request` into a temp file; raise 413/415/422 AppErrors on bad input."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise NotAPdf("send the PDF as multipart/form-data in a field named 'file'")
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidParameter("multipart body without a boundary")
    body_limit = settings.max_upload_bytes + _OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    _check_body(settings, int(declared) if declared and declared.isdigit() else 0, body_limit)
    # Before reading a body we could not store: 507 now beats ENOSPC halfway through.
    require_free_space(settings, int(declared) if declared and declared.isdigit() else 0)

    slots: UploadSlots = request.app.state.uploads
    with slots.slot():  # 503 + Retry-After past MAX_CONCURRENT_UPLOADS, before a byte is stored
        return await _receive(request, settings, request_id, boundary, body_limit)


async def _receive(request: Request, settings: Settings, request_id: str, boundary: bytes, body_limit: int) -> Upload:
    collector = _Collector(settings, request_id)
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
        received = 0
        async with aclosing(paced(request.stream(), settings)) as chunks:  # 408 for a stalled or crawling body
            async for chunk in chunks:
                received += len(chunk)
                _check_body(settings, received, body_limit)  # the form fields besides the file are bounded too
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        collector.abort()
        raise InvalidParameter(f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        collector.abort()
        raise AppError("client disconnected during the upload") from None
    except OSError as exc:
        collector.abort()
        if is_disk_full(exc):
            raise as_insufficient_storage("the upload") from None
        raise
    except BaseException:  # timeouts, 413, cancellation: the temp file goes on every way out
        collector.abort()
        raise
    if collector.path is None or collector._file is not None:
        collector.abort()
        raise InvalidParameter("multipart field 'file' with the PDF is required")
    return await received_file(collector.path, collector.size, collector.filename, settings,
                               fields=collector.fields)


def _check_body(settings: Settings, size: int, limit_bytes: int) -> None:
    """A request body carries the file plus its framing (multipart parts, JSON and base64): `limit_bytes` is
    MAX_UPLOAD_MB's allowance for that, checked on the declared length before reading and on the bytes read."""
    if size > limit_bytes:
        raise UploadTooLarge(f"request body exceeds the limit for MAX_UPLOAD_MB={settings.max_upload_mb:g}")


def scratch_upload(settings: Settings, request_id: str) -> Path:
    """A new empty file in the uploads directory, for a document that arrives some other way than multipart
    (a base64 body, a URL, a local path); hand it to `received_file` once written."""
    fd, tmp = tempfile.mkstemp(dir=uploads_dir(settings), prefix=f"{request_id}-", suffix=".pdf")
    os.close(fd)
    return Path(tmp)


async def received_file(path: Path, size: int, filename: str | None, settings: Settings, *,
                        fields: dict[str, str] | None = None) -> Upload:
    """The stored upload as an `Upload`: an image becomes its PDF wrapper here, so routes, jobs and MCP tools all
    see a PDF (app/conversion/source.py). The file is removed if that fails."""
    source = await stored_file(path, size, filename, settings)
    return Upload(path=source.path, size=source.size, filename=source.filename, image_format=source.image_format,
                  fields=dict(fields or {}))


async def receive_json_body(request: Request, settings: Settings, limit_bytes: int) -> bytes:
    """The whole body of a JSON request whose file travels inside it (base64), under the same upload slots, pace
    and deadline as a multipart upload; 413 past `limit_bytes`. Held in memory: JSON cannot be parsed in pieces,
    and MAX_CONCURRENT_UPLOADS bounds how many such bodies exist at once."""
    declared = request.headers.get("content-length")
    _check_body(settings, int(declared) if declared and declared.isdigit() else 0, limit_bytes)
    slots: UploadSlots = request.app.state.uploads
    with slots.slot():
        body = bytearray()
        try:
            async with aclosing(paced(request.stream(), settings)) as chunks:
                async for chunk in chunks:
                    body += chunk
                    _check_body(settings, len(body), limit_bytes)
        except ClientDisconnect:
            raise AppError("client disconnected during the upload") from None
        return bytes(body)
