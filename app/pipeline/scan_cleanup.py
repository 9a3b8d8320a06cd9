"""A scanned page cleaned of specks before detection and recognition, only where it has them, so a clean page goes
through untouched (and costs a few milliseconds of measuring).

Specks (salt-and-pepper): the detector draws boxes round dots and the recogniser reads them as punctuation or
letters glued to words. A speck pixel is a dark one whose eight neighbours are all light (pepper on paper) or a light
one whose eight neighbours are all dark (salt in a stroke): text strokes are never one isolated pixel, so clean pages
measure none. Above `SPECK_SHARE` of the page, the speck pixels (only they) take their 3 x 3 neighbourhood's median;
every stroke keeps its pixels. A whole-page median removed more of the hidden blend's smeared specks but thinned
sharp 200 DPI strokes and lost words on the plain specks set; contrast stretching of faded pages measured no gain
(bench/README.md, "worn families"), so neither is done.
"""

from __future__ import annotations

import numpy as np

SPECK_SHARE = 0.0005  # of the page's pixels: clean pages measure 0, the worn sets' specks 0.0009 to 0.004
DARK, LIGHT = 128, 176  # ink is darker than DARK, paper lighter than LIGHT


def speck_mask(gray: np.ndarray) -> np.ndarray:
    """The speck pixels of a grey uint8 page (see the module docstring)."""
    import cv2

    ring = np.ones((3, 3), dtype=np.uint8)
    ring[1, 1] = 0
    lightest = cv2.dilate(gray, ring, borderType=cv2.BORDER_REPLICATE)
    darkest = cv2.erode(gray, ring, borderType=cv2.BORDER_REPLICATE)
    return ((gray < DARK) & (darkest > LIGHT)) | ((gray > LIGHT) & (lightest < DARK))


def despeckle(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The RGB (or grey) page with its speck pixels replaced by their neighbourhood's median when they are more
    than `SPECK_SHARE` of it, else the page itself; and the share measured."""
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    mask = speck_mask(gray)
    share = float(np.count_nonzero(mask)) / max(1, mask.size)
    if share <= SPECK_SHARE:
        return image, share
    where = mask[..., None] if image.ndim == 3 else mask
    return np.ascontiguousarray(np.where(where, cv2.medianBlur(image, 3), image)), share
