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


# --- one degradation at a time: the families a copy meets -------------------------------------------------------
# `degrade` above is one blend; a family isolates one way copies go wrong, at a strength people still read, so the
# benchmark can say which of them we read worse than tesseract. `mixed` is the hidden set's blend (blur, specks,
# JPEG 70, skew up to 1.2 degrees). Each family draws from `default_rng(seed)`: one seed, one image.
FAMILIES = ("specks", "streaks", "low_contrast", "jpeg", "blur", "bleed_through", "warp", "photo", "skew", "mixed")


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _rgb(gray: np.ndarray) -> np.ndarray:
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))


def _jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, encoded = cv2.imencode(".jpg", np.clip(gray, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 grey image
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32)


def _skew(gray: np.ndarray, angle_deg: float) -> np.ndarray:
    import cv2

    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    return cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255.0)


def _specks(gray: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Salt and pepper: `fraction` of the pixels turned black or white, half each, plus a few toner dots
    (2-4 px blobs) scattered over the page."""
    import cv2

    out = gray.copy()
    hit = rng.random(gray.shape) < fraction
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0.0, 255.0)
    height, width = gray.shape
    for _ in range(int(rng.integers(150, 400))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(out, centre, int(rng.integers(1, 3)), float(rng.uniform(0, 60)), -1)
    return out


def degrade_family(image: np.ndarray, family: str, seed: int) -> tuple[np.ndarray, dict[str, float | str]]:
    """`image` (H x W x 3 uint8 RGB, a clean 200 DPI page) worn one way; returns (grey RGB image, what was drawn)."""
    import cv2

    if family not in FAMILIES:
        raise ValueError(f"unknown wear family {family!r}; one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    gray = _gray(image)
    height, width = gray.shape
    drawn: dict[str, float | str] = {"family": family}
    if family == "specks":
        drawn["fraction"] = fraction = float(rng.uniform(0.004, 0.010))
        gray = _specks(gray, rng, fraction)
    elif family == "streaks":
        # A dirty drum: a few vertical dark streaks of varying width and darkness, some the page's full height,
        # and a faint grey band along one edge.
        count = int(rng.integers(3, 7))
        drawn["streaks"] = count
        for _ in range(count):
            x = int(rng.integers(0, width - 4))
            span = int(rng.integers(1, 5))
            top = 0 if rng.random() < 0.5 else int(rng.integers(0, height // 2))
            bottom = height if rng.random() < 0.5 else int(rng.integers(height // 2, height))
            darkness = float(rng.uniform(60, 160))
            gray[top:bottom, x : x + span] = np.minimum(gray[top:bottom, x : x + span], darkness)
        edge = int(rng.integers(20, 60))
        gray[:, :edge] *= float(rng.uniform(0.75, 0.9))
    elif family == "low_contrast":
        drawn["contrast"] = contrast = float(rng.uniform(0.35, 0.5))
        drawn["paper"] = paper = float(rng.uniform(200, 225))
        gray = paper - (paper - gray) * contrast * paper / 255.0
    elif family == "jpeg":
        drawn["quality"] = quality = int(rng.integers(60, 76))
        gray = _jpeg(gray, quality)
    elif family == "blur":
        drawn["sigma_px"] = sigma = float(rng.uniform(1.1, 1.5))
        gray = cv2.GaussianBlur(gray, (0, 0), sigma)
    elif family == "bleed_through":
        # The other side of the sheet shows through: this page mirrored (a stand-in for its back), blurred by the
        # paper, at 15-30 % of its darkness.
        drawn["strength"] = strength = float(rng.uniform(0.15, 0.30))
        back = cv2.GaussianBlur(cv2.flip(gray, 1), (0, 0), 2.0)
        back = np.roll(back, int(rng.integers(-40, 40)), axis=0)
        gray = np.minimum(gray, 255.0 - (255.0 - back) * strength)
    elif family == "warp":
        # A page not flat on the glass: lines bow by a few pixels (a slow sine across the page), and the book's
        # spine side sinks a little.
        drawn["amplitude_px"] = amplitude = float(rng.uniform(2.0, 5.0))
        period = float(rng.uniform(0.8, 1.6)) * width
        phase = float(rng.uniform(0, 2 * np.pi))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        map_y = ys + amplitude * np.sin(2 * np.pi * xs / period + phase) + amplitude * (xs / width) ** 3
        gray = cv2.remap(gray, xs, map_y.astype(np.float32), cv2.INTER_LINEAR, borderValue=255.0)
    elif family == "photo":
        # A phone photo of the page: perspective (corners moved by up to 3 % of the side), a vignette and a soft
        # shadow, sensor noise, slight defocus, JPEG 85.
        shift = rng.uniform(-0.03, 0.03, size=(4, 2)) * [width, height]
        corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        matrix = cv2.getPerspectiveTransform(corners, (corners + shift).astype(np.float32))
        gray = cv2.warpPerspective(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=200.0)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = np.hypot((xs - width / 2) / width, (ys - height / 2) / height)
        drawn["vignette"] = vignette = float(rng.uniform(0.2, 0.35))
        gray = gray * (1.0 - vignette * radius**2 * 2)
        gray = cv2.GaussianBlur(gray, (0, 0), float(rng.uniform(0.6, 0.9)))
        gray = gray + rng.normal(0.0, float(rng.uniform(3, 6)), gray.shape).astype(np.float32)
        gray = _jpeg(gray, 85)
    elif family == "skew":
        drawn["angle_deg"] = angle = float(rng.uniform(0.6, 1.2) * rng.choice([-1.0, 1.0]))
        gray = _skew(gray, angle)
    else:  # mixed: the hidden set's blend
        drawn["angle_deg"] = angle = float(rng.uniform(0.3, 1.2) * rng.choice([-1.0, 1.0]))
        drawn["sigma_px"] = sigma = float(rng.uniform(0.8, 1.2))
        drawn["fraction"] = fraction = float(rng.uniform(0.002, 0.006))
        gray = _skew(gray, angle)
        gray = cv2.GaussianBlur(gray, (0, 0), sigma)
        gray = _specks(gray, rng, fraction)
        gray = _jpeg(gray, 70)
    return _rgb(gray), {k: round(v, 4) if isinstance(v, float) else v for k, v in drawn.items()}
