"""Image uploads: PNG, JPEG, TIFF (every frame a page), WebP and BMP become a PDF of image-only pages.

Why a PDF wrapper rather than a second page source: every later stage (page selection, render at the requested
DPI, layout, OCR, figure crops, job checkpoints and resume, S3 copies of the input) already works on a PDF, so an
image goes through exactly the code a scanned PDF does and a job's stored input stays a PDF. Each page is
`pixels / dpi * 72` points (the image's DPI metadata, else IMAGE_DEFAULT_DPI) with EXIF orientation applied; the
page has no text layer, so `auto` reads it with OCR.

Formats are recognised by their bytes, never by the file name. Every frame's declared size is checked against
MAX_PAGE_PIXELS before a single pixel is decoded (a 50 KB PNG can declare gigapixels), a truncated file is a 422,
and frames are wrapped one at a time (a one-page PDF each, merged in compressed form) so memory stays at about
one decoded frame however many frames a TIFF holds. The wrapper is byte-for-byte reproducible, so a repeated
job submission with an Idempotency-Key recognises the same upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ImageTooLarge, TooManyPages, UnreadableImage
from app.pipeline.options import check_image_mode
from app.pipeline import pdfium_backend as backend
from app.settings import Settings

# Magic numbers; `sniff` returns the Pillow format name.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
ACCEPTED = "PDF, PNG, JPEG, TIFF, WebP, BMP"
# Only TIFF frames are pages; an animated WebP or PNG is read as its first frame.
_MULTI_PAGE = frozenset({"TIFF"})
# DPI metadata outside this range is a placeholder (a 1x1 "aspect ratio" JFIF, a bogus value), not a scan's DPI.
_PLAUSIBLE_DPI = (36.0, 2400.0)
_ID_TRAILER = re.compile(rb"/ID\[<[0-9A-Fa-f]{32}><[0-9A-Fa-f]{32}>\]")
_DATES = re.compile(rb"(/(?:CreationDate|ModDate)\(D:)\d{14}")


def sniff(head: bytes) -> str | None:
    """The image format of a file from its first bytes (`PNG`, `JPEG`, `TIFF`, `WEBP`, `BMP`), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def sniff_file(path: Path) -> str | None:
    with Path(path).open("rb") as fh:
        return sniff(fh.read(16))


def ensure_pdf(path: Path, settings: Settings, *, dest: Path | None = None, mode: str | None = None) -> Path:
    """The path of a PDF to convert: `path` itself unless it is an image, in which case its PDF wrapper is
    written to `dest` (default: over `path`, atomically) and that path returned. With `mode`, an image in `text`
    mode is refused (`check_image_mode`). Blocking; typed errors."""
    path = Path(path)
    try:
        kind = sniff_file(path)
    except OSError:
        return path  # intake reports the unreadable file with its usual message
    if kind is None:
        return path
    if mode is not None:
        check_image_mode(kind, mode)
    target = Path(dest) if dest is not None else path
    data = image_to_pdf(path, settings, kind=kind)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def image_to_pdf(path: Path, settings: Settings, *, kind: str | None = None) -> bytes:
    """The PDF wrapper of the image at `path`: one page per frame (TIFF) or one page. Raises ImageTooLarge (413),
    TooManyPages (413) or UnreadableImage (422)."""
    kind = kind or sniff_file(path)
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    with backend.PdfAssembler() as out:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its limit raises) about bombs; our own limit below is lower and explicit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(path, formats=[kind] if kind else None)
            except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
                raise UnreadableImage(f"the {kind or 'image'} file cannot be read: {_reason(exc)}") from None
            with image:
                frames = getattr(image, "n_frames", 1) if kind in _MULTI_PAGE else 1
                if frames > settings.max_pages:
                    raise TooManyPages(
                        f"the image has {frames} frames; this service accepts at most {settings.max_pages} pages"
                    )
                for index in range(frames):
                    image.seek(index)
                    _check_pixels(image.size, index, frames, settings)
                    out.append(_frame_pdf(image, path if kind == "JPEG" else None, settings))
        merged = out.to_bytes()
    # pdfium writes a random document /ID and the time of the merge; the content's hash and a fixed date (each the
    # same length, so the cross-reference offsets stay right) make the wrapper reproducible.
    stable = digest.hexdigest()[:32].upper().encode()
    data = _ID_TRAILER.sub(b"/ID[<" + stable + b"><" + stable + b">]", merged, count=1)
    return _DATES.sub(rb"\g<1>20000101000000", data)


def _check_pixels(size: tuple[int, int], index: int, frames: int, settings: Settings) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise UnreadableImage("the image declares no pixels")
    if width * height > settings.max_page_pixels:
        where = f"frame {index + 1} of the image" if frames > 1 else "the image"
        raise ImageTooLarge(
            f"{where} is {width}x{height} ({width * height / 1e6:.0f} M pixels); this service accepts at most "
            f"{settings.max_page_pixels / 1e6:.0f} M pixels per page (MAX_PAGE_PIXELS)"
        )


def _frame_pdf(frame: Image.Image, jpeg_path: Path | None, settings: Settings) -> bytes:
    """A one-page PDF showing the current frame at its physical size."""
    try:
        frame.load()
        orientation = frame.getexif().get(0x0112, 1)
        upright = ImageOps.exif_transpose(frame) if orientation not in (0, 1) else frame
        dpi_x, dpi_y = _dpi(frame, settings)
        width_pt, height_pt = upright.width / dpi_x * 72, upright.height / dpi_y * 72
        if orientation in (5, 6, 7, 8):  # a quarter turn swaps which axis each DPI belongs to
            width_pt, height_pt = upright.width / dpi_y * 72, upright.height / dpi_x * 72
        pixels = None if _can_pass_through(frame, jpeg_path, orientation) else _to_rgb_or_grey(upright)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"the image is truncated or corrupt: {_reason(exc)}") from None
    return backend.image_page_pdf(width_pt, height_pt, pixels=pixels, jpeg_path=jpeg_path)


def _can_pass_through(frame: Image.Image, jpeg_path: Path | None, orientation: int) -> bool:
    return jpeg_path is not None and orientation in (0, 1) and frame.mode in ("RGB", "L")


def _to_rgb_or_grey(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("1", "I;16", "I;16B", "I;16L", "I", "F"):
        return _scaled_grey(image)
    if "A" in image.mode or image.mode == "P" and "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")  # transparency reads as paper
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _scaled_grey(image: Image.Image) -> Image.Image:
    if image.mode == "1":
        return image.convert("L")
    # 16-bit and float greys: stretch their actual range onto 8 bits (a plain convert would clip to white).
    image = image.convert("F")
    low, high = image.getextrema()
    if high <= low:
        return Image.new("L", image.size, 255)
    return image.point(lambda v: (v - low) * 255.0 / (high - low)).convert("L")


def _dpi(frame: Image.Image, settings: Settings) -> tuple[float, float]:
    default = float(settings.image_default_dpi)
    raw = frame.info.get("dpi")
    try:
        dpi_x, dpi_y = (float(raw[0]), float(raw[1])) if raw else (default, default)
    except (TypeError, ValueError, IndexError):
        return default, default
    low, high = _PLAUSIBLE_DPI
    if not (low <= dpi_x <= high and low <= dpi_y <= high):
        return default, default
    return dpi_x, dpi_y


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
