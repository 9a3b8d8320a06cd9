"""Intake: decide whether an upload is a PDF we can read, and which of its pages to convert.

Everything a client can get wrong is refused here with a typed error (`app.errors`) before any page is touched:
not a PDF, too big, unreadable, encrypted, no pages, too many pages, a bad page selection. What can only be seen
on a page (an embedded image too large to decode) is checked by `check_image_sizes` right before that page is
rendered (`check_image_sizes`, on the sizes the pdfium backend reads). Every pdfium call goes through
`pdfium_backend`, which holds its lock.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import NotAPdf, PageTooLarge, TooManyPages, UnreadablePdf, UploadTooLarge
from app.pipeline import pdfium_backend as backend
from app.pipeline.options import parse_page_ranges
from app.settings import Settings

if TYPE_CHECKING:
    from app.pipeline.pdfium_backend import PdfDocument

log = logging.getLogger(__name__)

MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the PDF spec lets junk precede the header; readers accept it within the first KiB
# Images are turned into PDFs before intake (image_input.py), so whatever reaches here without a header is neither.
NOT_A_PDF = ("the file is not a PDF (no %PDF- header in its first 1024 bytes) or an image this service reads "
             "(accepted: PDF, PNG, JPEG, TIFF, WebP, BMP)")

Source = bytes | bytearray | memoryview | str | os.PathLike


@dataclass(frozen=True)
class PdfInfo:
    """What intake learnt about a file: its page count, the selected pages (0-based, sorted) and the size of
    every page of the file in PDF points as displayed (rotation applied), indexed by 0-based page index."""

    page_count: int
    page_indices: list[int]
    page_sizes: list[tuple[float, float]] = field(repr=False)


def inspect_pdf(source: Source, settings: Settings, pages: str | None = None) -> PdfInfo:
    """Validate `source` (a path or the file's bytes) and select pages, raising a typed error for any problem.

    Blocking (pdfium parses the cross-reference table): async callers use `await asyncio.to_thread(...)`.
    """
    doc = open_pdf(source, settings)
    try:
        page_count = backend.page_count(doc)
        if page_count > settings.max_pages:
            raise TooManyPages(f"the PDF has {page_count} pages; this service accepts at most {settings.max_pages}")
        indices = parse_page_ranges(pages, page_count)
        sizes = backend.page_sizes(doc)
    finally:
        backend.close_document(doc)
    return PdfInfo(page_count=page_count, page_indices=indices, page_sizes=sizes)


def check_magic(head: bytes) -> None:
    """Raise NotAPdf unless `head` (the first bytes of a file) carries the `%PDF-` header."""
    if not head:
        raise NotAPdf("the file is empty")
    if MAGIC not in head[:MAGIC_WINDOW]:
        raise NotAPdf(NOT_A_PDF)


def open_pdf(source: Source, settings: Settings) -> PdfDocument:
    """Open `source` with pdfium after the size and header checks; typed errors for everything that fails.

    The caller owns the document (close it with `pdfium_backend.close_document`)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        size, head, target = len(data), data[:MAGIC_WINDOW], data
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(MAGIC_WINDOW)
        except OSError as exc:
            raise UnreadablePdf(f"cannot read the file: {exc.strerror or exc}") from None
        target = path
    if size > settings.max_upload_bytes:
        raise UploadTooLarge(
            f"the file is {size / 1048576:.1f} MiB; this service accepts at most {settings.max_upload_mb:g} MiB"
        )
    check_magic(head)
    return backend.open_document(target)


# --- per-page limits --------------------------------------------------------------------------------------------
def check_image_sizes(sizes: list[tuple[int, int]], page_number: int, settings: Settings) -> None:
    """Raise PageTooLarge if any of the declared image sizes (`PdfPage.objects().image_sizes`) exceeds
    `max_image_pixels`. Must run before anything renders the page: rendering decodes every image at full size."""
    limit = settings.max_image_pixels
    for width, height in sizes:
        if width * height > limit:
            raise PageTooLarge(
                f"page {page_number} embeds a {width}x{height} image ({width * height / 1e6:.0f} M pixels); "
                f"this service decodes at most {limit / 1e6:.0f} M pixels per image"
            )


def document_cache(settings: Settings, size: int = 4) -> backend.DocumentCache:
    """A worker's cache of open documents, each opened with `open_pdf`'s checks."""
    return backend.DocumentCache(functools.partial(open_pdf, settings=settings), size)
