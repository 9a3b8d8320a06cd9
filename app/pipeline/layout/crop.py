"""The pixels the VLM reads for one layout region, cut as the official pipeline cuts them.

PaddleX 3.7.2 `CropByBoxes` (`inference/pipelines/components/common/crop_image_regions.py`): the box's pixel
coordinates truncated to integers, `img[ymin:ymax, xmin:xmax]`, no margin (a margin lets the neighbouring lines into
the crop, and the model reads them too); in every shape mode but `rect`, a region with an outline
(`polygon_points`, PP-DocLayoutV3's masks) keeps only the pixels inside it, the rest painted white. The figure
export (`figures.crop`) keeps its own small margin: a picture saved for people to look at, not text to read.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.pipeline.primitives import Region

# The VLM's image processor (the hub repo's, run by vLLM) guesses the channel axis from the array's shape, so a crop
# 1 or 3 pixels tall is read channels-first: token count and features disagree and vLLM's engine dies on the request
# (PaddleOCR #17378, an 11 x 3 formula crop; PaddleX PR #5087 resizes such payloads in PaddleX's own server, which
# the image does not run). Upstream's overlap filter drops boxes under 6 px, so its crops never get there; a crop
# below this side is put on white to reach it (the content keeps its pixels).
MIN_VLM_SIDE_PX = 8
# Points times scale lands a hair under a whole pixel now and then (100 * 2.0 / 2.0 * 2.0 = 199.99999999999997);
# truncating that would lose a row upstream keeps.
_EPSILON = 1e-6
WHITE = 255


def region_crop(image: np.ndarray, region: Region, scale: float) -> np.ndarray | None:
    """The RGB pixels of `region` (box and outline in points) on a page rendered at `scale` pixels per point, or
    None when the box holds no pixel."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (int(v * scale + _EPSILON) for v in region.bbox)
    x0, x1 = max(0, x0), min(width, x1)
    y0, y1 = max(0, y0), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    pixels = np.array(image[y0:y1, x0:x1])  # a copy: the outline paints it
    if region.polygon is not None and len(region.polygon) >= 3:
        outline = np.array([(int(x * scale + _EPSILON) - x0, int(y * scale + _EPSILON) - y0)
                            for x, y in region.polygon], dtype=np.int32).reshape((-1, 1, 2))
        inside = np.zeros(pixels.shape[:2], dtype=np.uint8)
        cv2.fillPoly(inside, [outline], 1)
        pixels[inside == 0] = WHITE
    return np.ascontiguousarray(pixels)


def fit_for_the_vlm(pixels: np.ndarray) -> np.ndarray:
    """`pixels` unchanged, or on a white canvas MIN_VLM_SIDE_PX wide/tall where a side is shorter (top-left)."""
    height, width = pixels.shape[:2]
    if height >= MIN_VLM_SIDE_PX and width >= MIN_VLM_SIDE_PX:
        return pixels
    canvas = np.full((max(height, MIN_VLM_SIDE_PX), max(width, MIN_VLM_SIDE_PX), 3), WHITE, dtype=np.uint8)
    canvas[:height, :width] = pixels
    return canvas
