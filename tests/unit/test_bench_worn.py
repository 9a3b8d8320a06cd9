"""The benchmark's worn scans: reproducible from their seed, and worn in each of the ways the set promises."""

from __future__ import annotations

import numpy as np

from bench.worn import degrade


def _page() -> np.ndarray:
    import cv2

    page = np.full((600, 500, 3), 255, dtype=np.uint8)
    for row in range(6):
        cv2.putText(page, "Worn scans read", (30, 80 + 80 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    return page


def test_same_seed_same_pixels_other_seed_other_pixels():
    page = _page()
    first, wear = degrade(page, 7)
    again, wear_again = degrade(page, 7)
    other, wear_other = degrade(page, 8)
    assert np.array_equal(first, again) and wear == wear_again
    assert not np.array_equal(first, other) and wear != wear_other


def test_the_page_is_skewed_faded_unevenly_lit_blurred_and_noisy():
    page = _page()
    worn, wear = degrade(page, 3)
    assert worn.shape == page.shape and worn.dtype == np.uint8
    assert 0.2 <= abs(wear.angle_deg) <= 0.8 and 40 <= wear.jpeg_quality <= 60
    gray = worn[:, :, 0].astype(np.float32)
    assert np.array_equal(worn[:, :, 0], worn[:, :, 2])  # a grey scan
    # Faded: the darkest ink is far from black and the paper is no longer white.
    assert np.percentile(gray, 0.5) > 20 and np.percentile(gray, 50) < 240
    # Noisy: a blank strip of paper (left margin) is no longer flat.
    assert gray[:, :20].std() > 3
    # Unevenly lit: the paper's brightness differs between the page's quarters by more than the noise.
    quarters = [np.median(q) for q in (gray[:300, :250], gray[:300, 250:], gray[300:, :250], gray[300:, 250:])]
    assert max(quarters) - min(quarters) > 5
    # Skewed: the first text row's ink drifts vertically from its left end to its right end.
    clean_rows = np.nonzero((page[:, :, 0] < 128).any(axis=1))[0]
    band = slice(max(0, clean_rows[0] - 20), clean_rows[0] + 40)
    left = np.argmin(gray[band, 40:120].mean(axis=1))
    right = np.argmin(gray[band, 300:380].mean(axis=1))
    assert left != right
