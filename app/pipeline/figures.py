"""Images out, worker side: crop figure, chart, table and formula blocks from the page render into image files.

Runs in the worker right after a page is assembled, while its render is still in memory. Each crop is written
(temp + rename) into the document's images directory as `p<page>-<kind><n>.<png|jpg>`: unique per document
because the page number is in the name, stable across retries because a re-converted page rewrites the same
names. PNG for line art (charts, tables, formulas, diagrams: few colours, sharp edges), JPEG for photographs
(many colours), decided from the pixels. The block gets `image` (the path relative to the result, `images/...`)
and, for figures and charts, the page Markdown's placeholder `![figure](#bbox=...)` becomes a link with the
caption (or "Figure n") as alt text; tables and formulas keep their Markdown and carry the crop as a second
view in JSON only.

Per page the crops are capped at the document's limits (count and bytes); the document-wide budget is applied
in page order by `app.storage.images.finalize` once every page is in.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline.mdtext import escape_text
from app.pipeline.result import Block, PageResult
from app.storage.layout import IMAGES_DIRNAME, atomic_write

log = logging.getLogger(__name__)

# Block type -> the word in the file name.
EXPORTED: dict[str, str] = {"figure": "fig", "chart": "chart", "table": "table", "formula": "formula"}
LINKED = frozenset({"figure", "chart"})  # blocks whose Markdown becomes an image link
ALT_WORDS = {"figure": "Figure", "chart": "Chart"}
PAD_PT = 2.0
JPEG_QUALITY = 88
# A crop with more distinct colours than this (in a sample) is a photograph: JPEG; fewer is line art: PNG.
PHOTO_COLOURS = 2048
_SAMPLE_PIXELS = 16_384
_MAX_ALT = 200
_CAPTION_GAP_PT = 72.0
_CAPTION_START = re.compile(r"^\s*(?:fig(?:ure)?|chart|graph|plate|image|diagram)\.?\s*\d", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"!\[(figure|chart)\]\(#bbox=(-?\d+),(-?\d+),(-?\d+),(-?\d+)\)")


@dataclass(frozen=True)
class ImageTarget:
    """Where a document's crops go and how many a page may write: sent to the worker with each page task."""

    directory: str
    dpi: int
    max_count: int
    max_bytes: int


def export_from_page(result: PageResult, page: object, rendered: tuple[np.ndarray, float] | None,
                     target: ImageTarget, max_page_pixels: int) -> int:
    """`export_page_images` for an open pdfium page: reuses the page's render when it is sharp enough (OCR
    renders at the request's DPI), else renders the page once more at the target DPI (the `auto` mode layout
    render is too coarse for a figure). Returns the bytes written."""
    if not wanted_blocks(result):
        return 0
    if rendered is None or rendered[1] * 72 < target.dpi * 0.95:
        from app.pipeline import render

        rendered = render.render_page(page, target.dpi, max_page_pixels)  # type: ignore[arg-type]
    return export_page_images(result, rendered[0], rendered[1], target)


def export_regions(regions: list, image: np.ndarray, scale: float, page_number: int,
                   target: ImageTarget) -> list[tuple[str, tuple[float, float, float, float], str]]:
    """`vl` mode, in the worker: the blocks do not exist yet (the parent assembles them after the VLM has read
    the regions), so crop the exportable layout regions and return `(label, bbox, relative path)` for `attach`."""
    wanted = [r for r in regions if r.label in EXPORTED]
    return [(wanted[i].label, tuple(wanted[i].bbox), path)
            for i, path, _size, _number in _write_crops([(r.label, r.bbox) for r in wanted], image, scale,
                                                        page_number, target)]


def attach(result: PageResult, exported: list[tuple[str, tuple[float, float, float, float], str]],
           directory: Path) -> None:
    """`vl` mode, in the parent: give each assembled block the crop of its region (same label, same box) and link
    figures in the Markdown; crops whose region did not become such a block are deleted."""
    unused = list(exported)
    links: list[tuple[Block, str]] = []
    numbers: dict[str, int] = {}
    for block in wanted_blocks(result):
        match = next((e for e in unused if e[0] == block.type
                      and all(abs(a - b) <= 1 for a, b in zip(e[1], block.bbox, strict=True))), None)
        if match is None:
            continue
        unused.remove(match)
        block.image = match[2]
        numbers[block.type] = numbers.get(block.type, 0) + 1
        if block.type in LINKED:
            links.append((block, alt_text(result.blocks, block, numbers[block.type])))
    result.markdown = link_placeholders(result.markdown, links)
    for _, _, path in unused:
        (Path(directory) / Path(path).name).unlink(missing_ok=True)


def wanted_blocks(result: PageResult) -> list[Block]:
    return [b for b in result.blocks if b.type in EXPORTED]


def export_page_images(result: PageResult, image: np.ndarray, scale: float, target: ImageTarget) -> int:
    """Crop the page's exportable blocks from `image` (rendered at `scale` pixels per point), write the files,
    set `block.image` and link figures in `result.markdown`. Returns the bytes written."""
    blocks = wanted_blocks(result)
    written = 0
    links: list[tuple[Block, str]] = []
    for index, path, size, number in _write_crops([(b.type, b.bbox) for b in blocks], image, scale, result.page,
                                                  target):
        block = blocks[index]
        block.image = path
        written += size
        if block.type in LINKED:
            links.append((block, alt_text(result.blocks, block, number)))
    result.markdown = link_placeholders(result.markdown, links)
    return written


def _write_crops(items: list[tuple[str, tuple[float, float, float, float]]], image: np.ndarray, scale: float,
                 page_number: int, target: ImageTarget) -> Iterator[tuple[int, str, int, int]]:
    """Crop, encode and write (temp + rename) each exportable `(label, box)` within the page's count and byte
    budget; yields `(index in items, path relative to the result, bytes, number of its kind)` per file written."""
    directory = Path(target.directory)  # made by the parent; see storage/images.py
    counters: dict[str, int] = {}
    written = count = 0
    for index, (label, bbox) in enumerate(items):
        if count >= target.max_count:
            return
        kind = EXPORTED[label]
        counters[kind] = counters.get(kind, 0) + 1
        pixels = crop(image, bbox, scale)
        if pixels is None:
            continue
        data, ext = encode(pixels, photo_allowed=label in LINKED)
        if written + len(data) > target.max_bytes:
            continue
        name = f"p{page_number}-{kind}{counters[kind]}.{ext}"
        if not _write_crop(directory / name, data):
            continue
        written += len(data)
        count += 1
        yield index, f"{IMAGES_DIRNAME}/{name}", len(data), counters[kind]


def crop(image: np.ndarray, bbox: tuple[float, float, float, float], scale: float, *,
         min_side_px: int = 2) -> np.ndarray | None:
    """The pixels of `bbox` (points) with a small margin, or None when the box is narrower than `min_side_px` on
    this render."""
    height, width = image.shape[:2]
    pad = PAD_PT * scale
    x0 = max(0, int(bbox[0] * scale - pad))
    y0 = max(0, int(bbox[1] * scale - pad))
    x1 = min(width, int(np.ceil(bbox[2] * scale + pad)))
    y1 = min(height, int(np.ceil(bbox[3] * scale + pad)))
    if x1 - x0 < min_side_px or y1 - y0 < min_side_px:
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def encode(pixels: np.ndarray, *, photo_allowed: bool = True) -> tuple[bytes, str]:
    """PNG or JPEG bytes of an RGB crop, chosen by its content, and the file extension."""
    from PIL import Image

    picture = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if photo_allowed and is_photographic(pixels):
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), "jpg"
    picture.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue(), "png"


def is_photographic(pixels: np.ndarray) -> bool:
    flat = pixels.reshape(-1, pixels.shape[-1])
    if len(flat) > _SAMPLE_PIXELS:
        flat = flat[:: len(flat) // _SAMPLE_PIXELS]
    packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    return len(np.unique(packed)) > PHOTO_COLOURS


def alt_text(blocks: list[Block], block: Block, number: int) -> str:
    """The figure's caption: the nearest block starting like one ("Figure 2: ...") or labelled caption
    within two blocks of it in reading order and a line or so away on the page; else "Figure <n>" / "Chart <n>".
    Flattened to one line, without the brackets that would end the alt text."""
    index = next(i for i, b in enumerate(blocks) if b is block)
    candidates = []
    for other in blocks[max(0, index - 2): index + 3]:
        if other is block or not other.text.strip():
            continue
        # Layout sometimes labels the caption `text` or `reference` and the next paragraph `caption`: a block
        # that starts like a caption wins over one that is only labelled so.
        captionlike = bool(_CAPTION_START.match(other.text))
        if other.type != "caption" and not (other.type in ("text", "reference") and captionlike):
            continue
        gap = max(other.bbox[1] - block.bbox[3], block.bbox[1] - other.bbox[3], 0.0)
        if gap <= _CAPTION_GAP_PT:
            candidates.append((not captionlike, gap, other))
    if candidates:
        text = " ".join(min(candidates, key=lambda c: c[:2])[2].text.split())
        text = escape_text(text.replace("[", "(").replace("]", ")"))  # alt text is document text too
        return text if len(text) <= _MAX_ALT else text[: _MAX_ALT - 1].rstrip() + "…"
    return f"{ALT_WORDS.get(block.type, 'Figure')} {number}"


def link_placeholders(markdown: str, links: list[tuple[Block, str]]) -> str:
    """Replace each linked block's `![figure](#bbox=...)` placeholder (found by type and box) with its link."""
    for block, alt in links:
        def same(match: re.Match[str], block: Block = block) -> bool:
            box = [int(v) for v in match.groups()[1:]]
            return match.group(1) == block.type and all(abs(a - b) <= 1 for a, b in zip(box, block.bbox, strict=True))

        for match in _PLACEHOLDER.finditer(markdown):
            if same(match):
                markdown = markdown[: match.start()] + f"![{alt}]({block.image})" + markdown[match.end():]
                break
    return markdown


def _write_crop(path: Path, data: bytes) -> bool:
    """Write one crop; False when it cannot be written (a full disk, a directory a cancelled request removed):
    the page's text matters more than its picture, so the block keeps its placeholder and the page goes on."""
    try:
        atomic_write(path, data, durable=False, mode=0o644)
    except OSError as exc:
        log.warning("crop %s not written: %s", path.name, exc.strerror or exc)
        return False
    return True
