"""Intake: decide whether an upload is a PDF we can read, and which of its pages to convert.

Everything a client can get wrong is refused here with a typed error (`app.errors`) before any page is touched:
not a PDF, too big, unreadable, encrypted, no pages, too many pages, a bad page selection. What can only be seen
on a page (an embedded image too large to decode) is checked by `check_page_images` right before that page is
rendered. pypdfium2 is not thread-safe: every pdfium call in a process holds `PDFIUM_LOCK`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from app.errors import EmptyPdf, EncryptedPdf, NotAPdf, PageTooLarge, TooManyPages, UnreadablePdf, UploadTooLarge
from app.pipeline.options import parse_page_ranges
from app.settings import Settings

log = logging.getLogger(__name__)

# One lock for every pdfium call in this process: PDFium keeps global state and is not thread-safe.
PDFIUM_LOCK = threading.RLock()

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
        with PDFIUM_LOCK:
            page_count = len(doc)
            if page_count > settings.max_pages:
                raise TooManyPages(
                    f"the PDF has {page_count} pages; this service accepts at most {settings.max_pages}"
                )
            indices = parse_page_ranges(pages, page_count)
            sizes = [_page_size(doc, i) for i in range(page_count)]
    finally:
        with PDFIUM_LOCK:
            doc.close()
    return PdfInfo(page_count=page_count, page_indices=indices, page_sizes=sizes)


def check_magic(head: bytes) -> None:
    """Raise NotAPdf unless `head` (the first bytes of a file) carries the `%PDF-` header."""
    if not head:
        raise NotAPdf("the file is empty")
    if MAGIC not in head[:MAGIC_WINDOW]:
        raise NotAPdf(NOT_A_PDF)


def open_pdf(source: Source, settings: Settings) -> pdfium.PdfDocument:
    """Open `source` with pdfium after the size and header checks; typed errors for everything that fails.

    The caller owns the document (close it under `PDFIUM_LOCK`)."""
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
    with PDFIUM_LOCK:
        try:
            return pdfium.PdfDocument(target)
        except pdfium.PdfiumError:
            pass
        # pypdfium2 reports a page-less document with a stale error code, so ask pdfium again, directly.
        raise _classify_load_failure(target)


def _classify_load_failure(target: bytes | Path) -> Exception:
    if isinstance(target, Path):
        handle = pdfium_c.FPDF_LoadDocument((str(target) + "\0").encode("utf-8"), None)
    else:
        buffer = ctypes.create_string_buffer(target, len(target))
        handle = pdfium_c.FPDF_LoadMemDocument64(buffer, len(target), None)
    if handle:  # it opens: the document is fine but has no pages
        pdfium_c.FPDF_CloseDocument(handle)
        return EmptyPdf("the PDF has no pages")
    code = pdfium_c.FPDF_GetLastError()
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedPdf("the PDF is encrypted with a password; upload an unencrypted copy")
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedPdf("the PDF uses an encryption scheme this service cannot open")
    return UnreadablePdf("the PDF is damaged or truncated and cannot be read")


def _page_size(doc: pdfium.PdfDocument, index: int) -> tuple[float, float]:
    size = pdfium_c.FS_SIZEF()
    if not pdfium_c.FPDF_GetPageSizeByIndexF(doc.raw, index, ctypes.byref(size)):
        raise UnreadablePdf(f"page {index + 1} of the PDF is damaged and cannot be read")
    return (float(size.width), float(size.height))


# --- per-page limits --------------------------------------------------------------------------------------------
def check_page_images(page: pdfium.PdfPage, page_number: int, settings: Settings) -> None:
    """Raise PageTooLarge when the page shows an image whose declared size exceeds `max_image_pixels`.

    Reads only the images' dictionaries (pdfium decodes nothing here), so it is safe on hostile files; it must run
    before anything renders the page, because rendering decodes every image at full size."""
    check_image_sizes(image_pixel_sizes(page), page_number, settings)


def check_image_sizes(sizes: list[tuple[int, int]], page_number: int, settings: Settings) -> None:
    """Raise PageTooLarge if any of the declared image sizes exceeds `max_image_pixels`."""
    limit = settings.max_image_pixels
    for width, height in sizes:
        if width * height > limit:
            raise PageTooLarge(
                f"page {page_number} embeds a {width}x{height} image ({width * height / 1e6:.0f} M pixels); "
                f"this service decodes at most {limit / 1e6:.0f} M pixels per image"
            )


def image_pixel_sizes(page: pdfium.PdfPage, max_depth: int = 8) -> list[tuple[int, int]]:
    """Declared pixel sizes of the images on the page, including those inside form XObjects."""
    sizes: list[tuple[int, int]] = []
    width, height = ctypes.c_uint(), ctypes.c_uint()

    def visit(count: int, get, depth: int) -> None:
        for i in range(count):
            obj = get(i)
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                if pdfium_c.FPDFImageObj_GetImagePixelSize(obj, ctypes.byref(width), ctypes.byref(height)):
                    sizes.append((int(width.value), int(height.value)))
            elif kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < max_depth:
                visit(pdfium_c.FPDFFormObj_CountObjects(obj), lambda j, o=obj: pdfium_c.FPDFFormObj_GetObject(o, j),
                      depth + 1)

    with PDFIUM_LOCK:
        raw = page.raw
        visit(pdfium_c.FPDFPage_CountObjects(raw), lambda i: pdfium_c.FPDFPage_GetObject(raw, i), 0)
    return sizes


# --- open documents, cached per worker process ----------------------------------------------------------------------
class DocumentCache:
    """The last few documents a worker opened, keyed by path and file identity, so that consecutive pages of one
    file do not re-parse it. Not thread-safe by itself: callers hold `PDFIUM_LOCK`."""

    def __init__(self, settings: Settings, size: int = 4) -> None:
        self._settings = settings
        self._size = size
        self._docs: OrderedDict[tuple, pdfium.PdfDocument] = OrderedDict()

    def get(self, path: str | os.PathLike) -> pdfium.PdfDocument:
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise UnreadablePdf(f"cannot read the file: {exc.strerror or exc}") from None
        key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        with PDFIUM_LOCK:
            self._drop_stale()
            doc = open_pdf(path, self._settings)
            self._docs[key] = doc
            while len(self._docs) > self._size:
                _, old = self._docs.popitem(last=False)
                old.close()
        return doc

    def _drop_stale(self) -> None:
        """Close documents whose file was deleted or replaced: an open handle would keep a deleted upload's
        disk space in use."""
        for key in list(self._docs):
            try:
                stat = os.stat(key[0])
                current = (key[0], stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except OSError:
                current = None
            if current != key:
                self._docs.pop(key).close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            while self._docs:
                self._docs.popitem()[1].close()
