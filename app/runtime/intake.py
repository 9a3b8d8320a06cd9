"""Intake: decide whether an upload is a PDF we can read, and which of its pages to convert.

Everything a client can get wrong is refused here with a typed error (`app.errors`) before any page is touched:
not a PDF, too big, unreadable, encrypted, no pages, too many pages, a bad page selection. What can only be seen
on a page (an embedded image too large to decode) is checked in the worker right before that page is rendered
(`pdf_input.check_image_sizes`, on the sizes the pdfium backend reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.errors import TooManyPages
from app.pipeline import pdfium_backend as backend
from app.pipeline.options import parse_page_ranges
from app.pipeline.pdf_input import Source, open_pdf
from app.settings import Settings


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
