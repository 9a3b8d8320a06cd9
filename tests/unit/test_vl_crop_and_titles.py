"""The `vl` path on PaddleX-shaped regions (tests/fixtures: PP-DocLayout boxes as PaddleX 3.7.2 returns them):
crops cut exactly as upstream's `CropByBoxes` (no margin, outline kept to), and titles at upstream's heading levels
(`doc_title` `#`, numbered `paragraph_title` deeper by its numbering)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.pipeline.assemble import build_page
from app.pipeline.layout import merge
from app.pipeline.layout.crop import region_crop
from app.pipeline.layout.paddlex import regions_from_paddlex
from app.pipeline.page import _to_points, group_jpeg
from app.vlm.titles import heading

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCALE = 2.0  # the fixture page: 1200 x 1600 pixels of a 600 x 800 pt page rendered at 144 DPI (PaddleX's zoom 2)


def page_regions(name: str = "paddlex_layout_page.json"):
    result = json.loads((FIXTURES / name).read_text())
    return _to_points(regions_from_paddlex(result, width=1200, height=1600), SCALE)


def coordinates_image() -> np.ndarray:
    """A page whose pixels say where they are: red = x % 256, green = y % 256, blue = x // 256 * 16 + y // 256."""
    ys, xs = np.mgrid[0:1600, 0:1200]
    return np.stack([xs % 256, ys % 256, xs // 256 * 16 + ys // 256], axis=-1).astype(np.uint8)


# --- 5. crops: exactly the box, as CropByBoxes cuts it ----------------------------------------------------------
def test_every_crop_is_the_boxs_pixels_exactly_as_cropbyboxes_cuts_them():
    image = coordinates_image()
    raw = json.loads((FIXTURES / "paddlex_layout_page.json").read_text())["res"]["boxes"]
    by_score = {box["score"]: box["coordinate"] for box in raw}  # the scores tell the boxes apart
    regions = page_regions()
    assert len(regions) == len(raw)
    for region in regions:
        x0, y0, x1, y1 = (int(v) for v in by_score[region.score])  # upstream: int() of the pixel box, no margin
        crop = region_crop(image, region, SCALE)
        assert crop is not None and crop.shape == (y1 - y0, x1 - x0, 3), region.kind
        assert np.array_equal(crop, image[y0:y1, x0:x1]), region.kind


def test_a_line_just_outside_the_box_stays_out_of_the_crop():
    # A dark rule 1 px above and 1 px below the title's box: a padded crop (2 pt) would take both in.
    image = np.full((1600, 1200, 3), 255, dtype=np.uint8)
    title = next(r for r in page_regions() if r.kind == "doc_title")  # pixels 120.5, 70.2, 1080.9, 118.4
    image[69, 100:1100] = 0
    image[119, 100:1100] = 0
    image[90, 200:900] = 0  # the title's own ink
    crop = region_crop(image, title, SCALE)
    assert crop.shape[:2] == (118 - 70, 1080 - 120)
    assert (crop == 0).any(axis=-1).sum() == 700  # its own ink, nothing of the neighbours


def test_a_merged_group_is_stacked_from_exact_crops():
    left, right = (replace(r, kind="text") for r in page_regions() if r.kind == "text")  # side by side, 20 px apart
    group = merge.ReadingGroup((left, right), ("center",))
    pixels = np.asarray(Image.open(io.BytesIO(group_jpeg(coordinates_image(), group, SCALE))))
    assert pixels.shape[:2] == ((420 - 140) * 2, 1100 - 610)  # two 490 x 280 crops stacked; no margin


def test_a_polygon_outline_whites_out_what_lies_outside_it():
    # PP-DocLayoutV3 in shape mode `auto`: a text block round a picture's corner is an L, not its bounding box.
    result = {"res": {"boxes": [{"cls_id": 22, "label": "text", "score": 0.9, "coordinate": [100, 100, 300, 300],
                                 "polygon_points": [[100, 100], [300, 100], [300, 200], [200, 200], [200, 300],
                                                    [100, 300]]}]}}
    (region,) = _to_points(regions_from_paddlex(result, width=1200, height=1600), SCALE)
    image = np.zeros((1600, 1200, 3), dtype=np.uint8)
    crop = region_crop(image, region, SCALE)
    assert crop.shape[:2] == (200, 200)
    assert (crop[150:, 150:] == 255).all()  # the missing corner: white, as upstream paints it
    assert (crop[:90, :] == 0).all() and (crop[:, :90] == 0).all()  # inside the outline: the page's pixels


def test_a_crop_too_thin_for_the_vlms_processor_is_put_on_white():
    # An 11 x 3 px crop (PaddleOCR #17378) is read channels-first by the processor and kills vLLM's engine: the
    # crop the VLM gets is at least 8 px each way, its own pixels untouched at the top left.
    thin = replace(page_regions()[0], bbox=(100.0, 100.0, 105.5, 101.5), polygon=None)  # 11 x 3 px at scale 2
    image = coordinates_image()
    assert region_crop(image, thin, SCALE).shape[:2] == (3, 11)
    pixels = np.asarray(Image.open(io.BytesIO(group_jpeg(image, merge.ReadingGroup((thin,)), SCALE))))
    assert pixels.shape[:2] == (8, 11)
    assert (pixels[4:, :] > 230).all()  # white below the crop (JPEG: nearly)


def test_a_box_outside_the_page_has_no_crop():
    region = replace(page_regions()[0], bbox=(700.0, 900.0, 720.0, 920.0), polygon=None)
    assert region_crop(coordinates_image(), region, SCALE) is None


# --- 6. heading levels -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "text", "markdown", "level"), [
    ("doc_title", "Annual report 2025", "# Annual report 2025", 1),
    ("paragraph_title", "Introduction", "## Introduction", 2),
    ("paragraph_title", "1 Introduction", "## 1 Introduction", 2),
    ("paragraph_title", "2.1 Methods", "### 2.1 Methods", 3),
    ("paragraph_title", "2.1.3. Sampling.", "#### 2.1.3. Sampling", 4),
    ("paragraph_title", "3.2Results", "### 3.2 Results", 3),  # upstream puts a space after the numbering
    ("paragraph_title", "Results vs. baseline", "## Results vs. baseline", 2),  # not a numbering: no level
    ("paragraph_title", "(4) Scope", "## (4) Scope", 2),
], ids=["doc-title", "plain", "numbered", "two-levels", "three-levels", "no-space", "abbreviation", "parenthesis"])
def test_heading_levels_follow_upstream(kind, text, markdown, level):
    assert heading(kind, text) == (level, markdown)


def test_a_vl_page_writes_doc_title_as_h1_and_numbered_titles_deeper():
    regions = page_regions()
    edge = page_regions("paddlex_layout_edge_cases.json")
    paragraph_title = next(r for r in edge if r.kind == "paragraph_title")
    read = []
    for region in regions:
        if region.kind == "doc_title":
            read.append(replace(region, text="Annual report"))
        elif region.kind == "text":
            read.append(replace(region, text="Body text of the section."))
        else:
            read.append(region)
    # the edge-case page's paragraph title, moved below the doc title, read as a numbered sub-section
    read.append(replace(paragraph_title, bbox=(50.0, 60.0, 250.0, 68.0), text="2.1 Methods", order=2))
    page = build_page(page_number=1, width=600.0, height=800.0, source="vl", regions=read, lines=[])
    titles = [(b.level, b.text) for b in page.blocks if b.type == "title"]
    assert (1, "Annual report") in titles and (3, "2.1 Methods") in titles
    assert "# Annual report\n" in page.markdown + "\n" and "### 2.1 Methods" in page.markdown
    assert "## Annual report" not in page.markdown


# --- 4. what is never merged: upstream's non_merge_labels ------------------------------------------------------
def test_on_the_paddlex_page_only_text_runs_merge_and_pictures_charts_tables_stay_apart():
    regions = page_regions()
    groups = merge.group_regions(regions)
    merged = [g for g in groups if len(g.members) > 1]
    assert [[m.kind for m in g.members] for g in merged] == [["text", "text"]]  # the two halves of one line
    alone = {g.members[0].kind for g in groups if len(g.members) == 1}
    assert {"image", "chart", "table"} <= alone
    assert {"image", "chart", "table", "seal"} <= merge.apart_kinds()
    # text flowing round the page's chart is one stack; round a seal the same (seal recognition is off)
    chart = next(r for r in regions if r.kind == "chart")
    upper = replace(chart, kind="text", label="text", bbox=(200.0, 505.0, 305.0, 530.0), polygon=None)
    lower = replace(chart, kind="text", label="text", bbox=(200.5, 532.0, 550.0, 560.0), polygon=None)
    for kind in ("chart", "seal"):
        beside = replace(chart, kind=kind)
        assert [len(g.members) for g in merge.group_regions([upper, beside, lower])] == [2, 1]
