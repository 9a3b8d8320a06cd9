"""A conversion's input: a file on local disk that is a PDF by the time it is converted.

An image (PNG, JPEG, TIFF, WebP, BMP) becomes its PDF wrapper as soon as it is stored (`image_input.ensure_pdf`),
so page selection, render, crops and job checkpoints all run the one PDF path, whichever door the file came in by:
`stored_file` for a file the service received (an HTTP upload, a base64 body, a URL; the file is the service's and
is removed once converted), `local_file` for a file of the caller's own (the CLI, batch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from app.runtime.image_input import ensure_pdf, sniff_file
from app.settings import Settings


@dataclass
class SourceFile:
    path: Path  # the PDF to convert (an image's PDF wrapper)
    size: int  # bytes as received
    filename: str | None  # the client's name for it, kept only as a string
    image_format: str | None = None  # PNG, JPEG...: it was an image (refused in `text` mode)
    temporary: bool = True  # the conversion removes it once done, unless a job adopts it (the 202 hand-off)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def stored_file(path: Path, size: int, filename: str | None, settings: Settings) -> SourceFile:
    """A file the service stored (and owns): an image becomes its PDF wrapper in place. Removed if that fails."""
    try:
        image_format = await asyncio.to_thread(sniff_file, path)
        if image_format is not None:
            await asyncio.to_thread(ensure_pdf, path, settings)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SourceFile(path=path, size=size, filename=filename, image_format=image_format)


def local_file(path: Path, settings: Settings, *, mode: str, dest: Path | None = None) -> SourceFile:
    """A file of the caller's (never removed by the conversion): itself if a PDF, else its PDF wrapper, written to
    `dest` (default: over `path`). An image is refused in `text` mode. Blocking; typed errors."""
    path = Path(path)
    try:
        image_format = sniff_file(path)
        size = path.stat().st_size
    except OSError:
        image_format, size = None, 0  # intake reports the unreadable file with its usual message
    pdf = ensure_pdf(path, settings, dest=dest, mode=mode)
    return SourceFile(path=pdf, size=size, filename=path.name, image_format=image_format, temporary=False)
