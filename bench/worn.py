"""Worn scans, made reproducibly: a clean page image degraded the way office scanners and copiers degrade pages.

`degrade(image, seed)` applies, in the order a real page meets them: a small rotation (the page lies askew on the
glass), uneven illumination with lowered contrast (lamp fall-off, grey paper), optical blur, sensor noise and JPEG
compression. Every random draw comes from `numpy.random.default_rng(seed)`, so one seed always gives the same
pixels and the benchmark's worn set is the same set on every machine. The strengths are sized on 200 DPI pages:
text stays readable for a person (it is what people feed to OCR), but thin strokes thin out and edges go soft.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Wear:
    """One page's degradation, as drawn from its seed (reported so a reader can see what each page went through)."""

    angle_deg: float
    contrast: float  # ink-to-paper contrast kept, 1 = untouched
    shade: float  # darkest illumination on the page (multiplier), 1 = even lighting
    blur_sigma_px: float
    noise_sigma: float  # on the 0-255 scale
    jpeg_quality: int

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def draw_wear(rng: np.random.Generator) -> Wear:
    return Wear(
        angle_deg=float(rng.uniform(0.2, 0.8) * rng.choice([-1.0, 1.0])),
        contrast=float(rng.uniform(0.70, 0.85)),
        shade=float(rng.uniform(0.80, 0.92)),
        blur_sigma_px=float(rng.uniform(0.7, 1.0)),
        noise_sigma=float(rng.uniform(6.0, 10.0)),
        jpeg_quality=int(rng.integers(40, 61)),
    )


def degrade(image: np.ndarray, seed: int) -> tuple[np.ndarray, Wear]:
    """`image` (H x W x 3 uint8 RGB, a clean page) worn as drawn from `seed`; returns (worn RGB image, the wear)."""
    import cv2

    rng = np.random.default_rng(seed)
    wear = draw_wear(rng)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = gray.shape

    # Askew on the glass: rotate about the centre, paper-white where the page had no pixels.
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), wear.angle_deg, 1.0)
    gray = cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255.0)

    # Grey paper and faded ink: pull both towards mid-grey, then light the page unevenly (a smooth ramp from one
    # random corner, darkest at `shade`).
    paper = 235.0
    gray = paper - (paper - gray) * wear.contrast
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xs / width + np.sin(direction) * ys / height)
    ramp = (ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min()))
    gray = gray * (wear.shade + (1.0 - wear.shade) * ramp)

    gray = cv2.GaussianBlur(gray, (0, 0), wear.blur_sigma_px)
    gray = gray + rng.normal(0.0, wear.noise_sigma, gray.shape).astype(np.float32)
    gray = np.clip(gray, 0, 255).astype(np.uint8)

    ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, wear.jpeg_quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 grey image
        raise RuntimeError("JPEG encoding failed")
    gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(np.stack([gray] * 3, axis=-1)), wear
