"""Our pages in PaddleOCR-VL's shape: `prunedResult` (parsing_res_list, page size in pixels, model settings,
layout boxes), the page's Markdown rendered from those blocks as PaddleX renders it, `isStart`/`isEnd`, the
layout visualisation, and the restructuring of several pages (tables continued across a page break merged,
title levels from their numbering, pages concatenated) that both endpoints share.

Boxes: ours are PDF points; PaddleX's are pixels of the page image it read (a PDF page rendered at twice its
size in points, an image as it is), so every box is scaled by the page's pixel size over its size in points.
The Markdown is rendered from `parsing_res_list` (not our page Markdown) so that `/restructure-pages` renders
pages any PaddleX server answered with the same rules.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from app.compat.paddlex import OUTPUT_IMAGE_MAX_PX
from app.pipeline.result import Block, PageResult

# PaddleX renders a PDF page at 2x its size in points (PDF_RENDER_SCALE) before reading it.
PDF_RENDER_SCALE = 2.0

# PP-DocLayoutV2's classes, in the order of its class ids (`cls_id` in layout_det_res).
LAYOUT_CLASSES = ("abstract", "algorithm", "aside_text", "chart", "content", "display_formula", "doc_title",
                  "figure_title", "footer", "footer_image", "footnote", "formula_number", "header", "header_image",
                  "image", "inline_formula", "number", "paragraph_title", "reference", "reference_content", "seal",
                  "table", "text", "vertical_text", "vision_footnote")
# Our block types as PaddleOCR-VL's labels (titles: level 1 is the document title).
_LABELS = {"text": "text", "list": "text", "table": "table", "figure": "image", "chart": "chart",
           "caption": "figure_title", "header": "header", "footer": "footer", "page_number": "number",
           "formula": "display_formula", "reference": "reference_content"}
# Labels PaddleOCR-VL gives no reading-order number (`block_order` null), besides those left out of Markdown.
SKIP_ORDER_LABELS = frozenset({"figure_title", "vision_footnote", "image", "chart", "table", "header",
                               "header_image", "footer", "footer_image", "footnote", "aside_text"})
_IMAGE_LABELS = frozenset({"image", "chart", "header_image", "footer_image", "seal"})
_TEXT_LABELS = frozenset({"text", "abstract", "content", "reference_content", "vertical_text"})
_SENTENCE_END = tuple(".!?。！？…:;\"'”’)")
_NUMBERED = re.compile(r"^\s*(\d+(?:\.\d+)*)[.\s]")
_TABLE_ROWS = re.compile(r"<tr\b.*?</tr>", re.S | re.I)


def label_of(block: Block) -> str:
    if block.type == "title":
        return "doc_title" if (block.level or 2) <= 1 else "paragraph_title"
    return _LABELS[block.type]


def pdf_page_pixels(width_pt: float, height_pt: float) -> tuple[int, int]:
    return max(1, round(width_pt * PDF_RENDER_SCALE)), max(1, round(height_pt * PDF_RENDER_SCALE))


def pruned_page(page: PageResult, size_px: tuple[int, int], model_settings: dict[str, Any], *,
                format_block_content: bool = False) -> dict[str, Any]:
    """`prunedResult` of one page: blocks in our reading order, boxes in pixels of a `size_px` page image."""
    sx, sy = size_px[0] / page.width, size_px[1] / page.height
    ignore = set(model_settings["markdown_ignore_labels"])
    blocks: list[dict[str, Any]] = []
    boxes: list[dict[str, Any]] = []
    order = 1
    for index, block in enumerate(sorted(page.blocks, key=lambda b: b.order)):
        label = label_of(block)
        x0, y0, x1, y1 = block.bbox
        bbox = [round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)]
        skip = label in SKIP_ORDER_LABELS or label in ignore
        entry: dict[str, Any] = {
            "block_label": label,
            "block_content": _content(block),
            "block_bbox": bbox,
            "block_id": index,
            "block_order": None if skip else order,
            "group_id": index,
        }
        if block.image:
            entry["block_image"] = block.image  # the crop's key in `markdown.images`
        if block.type == "title" and block.level:
            entry["title_level"] = block.level
        if block.type == "table" and block.continued:
            entry["continues_previous_page"] = True
        if format_block_content:
            entry["block_content"] = block_markdown(entry, pretty=True)
        order += 0 if skip else 1
        blocks.append(entry)
        cls_id = LAYOUT_CLASSES.index(label) if label in LAYOUT_CLASSES else -1
        boxes.append({"cls_id": cls_id, "label": label, "score": block.score if block.score is not None else 1.0,
                      "coordinate": [float(v) for v in bbox]})
    return {"page_count": None, "width": size_px[0], "height": size_px[1], "model_settings": model_settings,
            "parsing_res_list": blocks, "layout_det_res": {"boxes": boxes}}


def _content(block: Block) -> str:
    if block.type == "table" and block.html:
        return block.html
    if block.type == "formula":
        text = block.text.strip()
        return text if text.startswith("$") else f"$${text}$$" if text else ""
    return block.text


# --- Markdown --------------------------------------------------------------------------------------------------
def block_markdown(block: dict[str, Any], *, pretty: bool, relevel: bool = False) -> str:
    """One parsing_res_list block as Markdown, as PaddleX renders the label."""
    label, content = block.get("block_label", "text"), str(block.get("block_content") or "").strip()
    if label == "doc_title":
        return f"# {content}" if content else ""
    if label == "paragraph_title":
        return f"{'#' * _title_level(block, content, relevel)} {content}" if content else ""
    if label in _IMAGE_LABELS:
        path = block.get("block_image")
        if not path:
            return content
        picture = (f'<div style="text-align: center;"><img src="{path}" alt="Image" /></div>' if pretty
                   else f"![]({path})")
        return f"{picture}\n\n{content}" if content else picture
    if label == "figure_title" and pretty and content:
        return f'<div style="text-align: center;">{content}</div>'
    if label in ("display_formula", "formula") and content and not content.startswith("$"):
        return f"$$\n{content}\n$$"
    return content


def _title_level(block: dict[str, Any], content: str, relevel: bool) -> int:
    # relevelTitles: "2.3.1 Results" is a level-4 heading under "2.3"; without numbering, the level we read.
    numbered = _NUMBERED.match(content) if relevel else None
    if numbered:
        return min(6, 1 + numbered.group(1).count(".") + 1)
    return min(6, max(2, int(block.get("title_level") or 2)))


def page_markdown(pruned: dict[str, Any], *, pretty: bool, relevel: bool = False) -> str:
    ignore = set(pruned.get("model_settings", {}).get("markdown_ignore_labels") or ())
    parts = (block_markdown(b, pretty=pretty, relevel=relevel) for b in pruned.get("parsing_res_list", [])
             if b.get("block_label") not in ignore)
    return "\n\n".join(p for p in parts if p)


def paragraph_edges(pruned: dict[str, Any]) -> tuple[bool, bool]:
    """`isStart`, `isEnd`: whether the page's first body block starts a paragraph and its last one ends one
    (False when text runs on across the page break: lowercase start, no closing punctuation at the end)."""
    ignore = set(pruned.get("model_settings", {}).get("markdown_ignore_labels") or ())
    body = [b for b in pruned.get("parsing_res_list", []) if b.get("block_label") not in ignore]
    if not body:
        return True, True
    first, last = body[0], body[-1]
    first_text = str(first.get("block_content") or "").lstrip()
    last_text = str(last.get("block_content") or "").rstrip()
    starts = not (first.get("continues_previous_page") or
                  (first.get("block_label") in _TEXT_LABELS and first_text[:1].islower()))
    ends = not (last.get("block_label") in _TEXT_LABELS and last_text and not last_text.endswith(_SENTENCE_END))
    return starts, ends


# --- restructuring several pages -------------------------------------------------------------------------------
def restructure(pages: Sequence[dict[str, Any]], *, merge_tables: bool, concatenate: bool) -> list[dict[str, Any]]:
    """Pages as one document: a table continued at the top of a page is merged into the table that ends the page
    before (its rows appended; the continuing block keeps its place, emptied, so block ids stay stable), and with
    `concatenate` every page's blocks form one page. Title levels are applied when the Markdown is rendered."""
    pages = [_copy(p) for p in pages]
    if merge_tables:
        for before, after in zip(pages, pages[1:]):
            _merge_continued_table(before, after)
    if not concatenate or not pages:
        return pages
    joined = dict(pages[0])
    joined["parsing_res_list"] = [b for p in pages for b in p.get("parsing_res_list", [])]
    joined["layout_det_res"] = {"boxes": [box for p in pages for box in (p.get("layout_det_res") or {}).get("boxes", [])]}
    return [joined]


def _copy(pruned: dict[str, Any]) -> dict[str, Any]:
    copied = dict(pruned)
    copied["parsing_res_list"] = [dict(b) for b in pruned.get("parsing_res_list", [])]
    return copied


def _merge_continued_table(before: dict[str, Any], after: dict[str, Any]) -> None:
    body_before = [b for b in before.get("parsing_res_list", []) if b.get("block_label") not in ("header", "footer",
                                                                                                  "number")]
    body_after = [b for b in after.get("parsing_res_list", []) if b.get("block_label") not in ("header", "footer",
                                                                                                "number")]
    if not body_before or not body_after:
        return
    tail, head = body_before[-1], body_after[0]
    if tail.get("block_label") != "table" or head.get("block_label") != "table":
        return
    rows_tail = _TABLE_ROWS.findall(str(tail.get("block_content") or ""))
    rows_head = _TABLE_ROWS.findall(str(head.get("block_content") or ""))
    if not rows_tail or not rows_head:
        return
    if not head.get("continues_previous_page") and _cells(rows_tail[-1]) != _cells(rows_head[0]):
        return  # neither marked as continued nor the same column count: two tables
    if head.get("continues_previous_page") and rows_head and _is_header_repeat(rows_tail[0], rows_head[0]):
        rows_head = rows_head[1:]  # the header row the continuation repeats
    content = str(tail["block_content"])
    cut = content.lower().rfind("</table>")
    tail["block_content"] = content[:cut] + "".join(rows_head) + content[cut:]
    head["block_content"] = ""


def _cells(row: str) -> int:
    return len(re.findall(r"<t[dh]\b", row, re.I))


def _is_header_repeat(first_row: str, row: str) -> bool:
    return re.sub(r"\s+", "", first_row) == re.sub(r"\s+", "", row)


# --- visualisation ---------------------------------------------------------------------------------------------
def layout_picture(rgb: np.ndarray, pruned: dict[str, Any]) -> bytes:
    """The page image with each block's box and reading-order number drawn, as JPEG (PaddleX's `layout_det_res`
    output image), shrunk to OUTPUT_IMAGE_MAX_PX on its longer side."""
    picture = Image.fromarray(rgb).convert("RGB")
    width, height = pruned["width"], pruned["height"]
    if picture.size != (width, height):
        picture = picture.resize((width, height))
    draw = ImageDraw.Draw(picture)
    for block in pruned.get("parsing_res_list", []):
        x0, y0, x1, y1 = block["block_bbox"]
        color = _COLORS[sum(map(ord, block["block_label"])) % len(_COLORS)]
        draw.rectangle((x0, y0, x1, y1), outline=color, width=3)
        tag = block["block_label"] + (f" {block['block_order']}" if block.get("block_order") else "")
        draw.text((x0 + 4, max(0, y0 - 12)), tag, fill=color)
    return jpeg(picture)


def jpeg(picture: Image.Image) -> bytes:
    picture = picture.convert("RGB")
    if max(picture.size) > OUTPUT_IMAGE_MAX_PX:
        picture.thumbnail((OUTPUT_IMAGE_MAX_PX, OUTPUT_IMAGE_MAX_PX))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


_COLORS = ((220, 20, 60), (30, 144, 255), (34, 139, 34), (255, 140, 0), (148, 0, 211), (0, 139, 139))


def image_keys(pruned_pages: Iterable[dict[str, Any]]) -> list[list[str]]:
    """Per page, the crops its Markdown links (`block_image`), in block order."""
    return [[b["block_image"] for b in p.get("parsing_res_list", []) if b.get("block_image")] for p in pruned_pages]


# --- a whole answer --------------------------------------------------------------------------------------------
def answer_page(pruned: dict[str, Any], images: dict[str, str] | None, *, pretty: bool, relevel: bool,
                output_images: dict[str, str] | None = None, input_image: str | None = None) -> dict[str, Any]:
    """One entry of `layoutParsingResults`."""
    is_start, is_end = paragraph_edges(pruned)
    entry: dict[str, Any] = {
        "prunedResult": pruned,
        "markdown": {"text": page_markdown(pruned, pretty=pretty, relevel=relevel), "isStart": is_start,
                     "isEnd": is_end},
    }
    if images is not None:  # PaddleX leaves absent fields out rather than sending null
        entry["markdown"]["images"] = images
    if output_images is not None:
        entry["outputImages"] = output_images
    if input_image is not None:
        entry["inputImage"] = input_image
    return entry
