"""The layout interface every engine implements, and the box arithmetic the engines share."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from app.pipeline.primitives import Region
from app.pipeline.result import BBox


class LayoutEngine(Protocol):
    """Finds the regions of a page image. `load()` reads the weights (never `__init__`), `warmup()` runs one small
    image so that the first real page is not slow, `detect()` returns regions with PIXEL boxes of that image and
    labels already in the fixed `BlockType` vocabulary, sorted top-to-bottom."""

    name: str
    # `vl` mode reads runs of neighbouring text regions with one VLM request (layout/merge.py), as the official
    # PaddleOCR-VL pipeline does with PP-DocLayoutV3/V2's regions; engines without that rule say False.
    merge_layout_blocks: bool

    def load(self) -> None: ...

    def warmup(self) -> None: ...

    def health(self) -> bool: ...

    def detect(self, image: np.ndarray) -> list[Region]: ...


def area(box: BBox) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: BBox, b: BBox) -> float:
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def suppress_duplicates(regions: list[Region], *, iou: float = 0.6, containment: float = 0.85) -> list[Region]:
    """Drop regions that repeat a higher-scoring one. Models run NMS per class, so the same paragraph can come back
    as both `text` and `title`, or twice with slightly different boxes: a region goes when its IoU with a kept one
    passes `iou`, or when it lies (by `containment` of its own area) inside a kept region of the same label."""
    kept: list[Region] = []
    for region in sorted(regions, key=lambda r: r.score, reverse=True):
        duplicate = False
        for other in kept:
            inter = intersection(region.bbox, other.bbox)
            if inter <= 0:
                continue
            union = area(region.bbox) + area(other.bbox) - inter
            if union > 0 and inter / union >= iou:
                duplicate = True
            elif other.label == region.label and inter >= containment * max(area(region.bbox), 1e-9):
                duplicate = True
            if duplicate:
                break
        if not duplicate:
            kept.append(region)
    return sorted(kept, key=lambda r: (r.bbox[1], r.bbox[0]))
