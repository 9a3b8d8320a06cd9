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


# --- one family at a time (degrade_family) ------------------------------------------------------------------------
def test_every_family_wears_the_page_reproducibly_and_differently():
    import pytest

    from bench.worn import FAMILIES, degrade_family

    page = _page()
    outputs = {}
    for family in FAMILIES:
        worn, drawn = degrade_family(page, family, 5)
        again, _ = degrade_family(page, family, 5)
        assert drawn["family"] == family and worn.shape == page.shape and worn.dtype == np.uint8
        assert np.array_equal(worn, again) and not np.array_equal(worn, page), family
        outputs[family] = worn[:, :, 0]
    assert len({o.tobytes() for o in outputs.values()}) == len(FAMILIES)
    with pytest.raises(ValueError, match="unknown wear family"):
        degrade_family(page, "coffee", 5)


def test_each_family_is_the_wear_it_names():
    from app.pipeline.scan_cleanup import speck_mask
    from bench.worn import degrade_family

    page = _page()
    gray = page[:, :, 0]
    specks = degrade_family(page, "specks", 1)[0][:, :, 0]
    assert speck_mask(specks).mean() > 10 * speck_mask(gray).mean() + 0.001  # isolated dots everywhere
    faded, drawn = degrade_family(page, "low_contrast", 1)
    assert np.percentile(faded, 99) - np.percentile(faded, 1) < 140 and drawn["contrast"] <= 0.5
    _, drawn = degrade_family(page, "skew", 1)
    assert 0.6 <= abs(drawn["angle_deg"]) <= 1.2
    _, drawn = degrade_family(page, "mixed", 1)
    assert abs(drawn["angle_deg"]) <= 1.2 and drawn["fraction"] > 0
    blurred = degrade_family(page, "blur", 1)[0][:, :, 0].astype(float)
    assert np.abs(np.diff(blurred, axis=1)).max() < np.abs(np.diff(gray.astype(float), axis=1)).max()
