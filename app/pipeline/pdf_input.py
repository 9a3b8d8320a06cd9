"""A PDF opened within the service's limits, for intake and for the worker that renders its pages: the size and
header checks before pdfium sees the file, and the embedded-image bound a page is checked against before it is
rendered. Every pdfium call goes through `pdfium_backend`, which holds its lock.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import NotAPdf, PageTooLarge, UnreadablePdf
from app.pipeline import pdfium_backend as backend
from app.settings import Settings
from app.storage.upload_size import check_upload_size

if TYPE_CHECKING:
    from app.pipeline.pdfium_backend import PdfDocument

MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the PDF spec lets junk precede the header; readers accept it within the first KiB
# Images are turned into PDFs before intake (app/runtime/image_input.py), so whatever reaches here without a header
# is neither.
NOT_A_PDF = ("the file is not a PDF (no %PDF- header in its first 1024 bytes) or an image this service reads "
             "(accepted: PDF, PNG, JPEG, TIFF, WebP, BMP)")

Source = bytes | bytearray | memoryview | str | os.PathLike


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
    check_upload_size(settings, size, f"the file ({size / 1048576:.1f} MiB)")
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
