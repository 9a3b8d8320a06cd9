"""The one rule on how large a document may be: at most MAX_UPLOAD_MB, whichever door it came through.

Each door checks it at its earliest moment (a declared length before reading, the bytes as they stream, a file's
size before copying it, the PDF at intake for local files); all of them through `check_upload_size`, so the
limit and the 413's wording live here.
"""

from __future__ import annotations

from app.errors import UploadTooLarge
from app.settings import Settings


def check_upload_size(settings: Settings, size: int, what: str = "upload") -> None:
    """Raise UploadTooLarge (413) when `size` bytes of `what` exceed MAX_UPLOAD_MB."""
    if size > settings.max_upload_bytes:
        raise UploadTooLarge(f"{what} exceeds MAX_UPLOAD_MB={settings.max_upload_mb:g}")
