"""Plain values passed between pipeline stages. Frozen dataclasses: cheap to pickle across worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.pipeline.result import BBox, BlockType


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text with its box. Units are whatever the producer says: PDF points for the text layer,
    pixels for OCR output (converted to points with `scale_bbox` before assembly)."""

    text: str
    bbox: BBox
    score: float = 1.0
    font_size: float | None = None  # points; text layer only, helps find headings
    bold: bool = False


@dataclass(frozen=True, slots=True)
class Region:
    """A layout region in the fixed vocabulary. `text`/`html` are set when a recognizer read the region as a
    whole (the VLM in `vl` mode); otherwise assembly fills it from the lines that fall inside it."""

    label: BlockType
    bbox: BBox
    score: float = 1.0
    text: str | None = None
    html: str | None = None
    # The layout model's own label where it says more than `label` (PaddleX's `header_image`, `formula_number`):
    # what the VLM is asked, and how its answer is cleaned, follow the official pipeline's rules for it.
    kind: str | None = None
    # Position in the layout model's own reading order (PP-DocLayoutV3 and V2 predict one); assembly keeps it.
    order: int | None = None
    # The region's outline where the layout model draws one (PP-DocLayoutV3's masks), same space as `bbox`: the
    # VLM's crop keeps only what is inside it (app/pipeline/layout/crop.py).
    polygon: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class TextLayer:
    """What a born-digital page says about itself: its text lines and the ruling lines that draw tables."""

    lines: list[TextLine] = field(default_factory=list)
    rulings: list[BBox] = field(default_factory=list)  # thin horizontal/vertical segments, PDF points
    char_count: int = 0


def scale_polygon(polygon: tuple[tuple[float, float], ...] | None, factor: float) -> tuple[tuple[float, float], ...] | None:
    """`scale_bbox` for a region's outline (None stays None)."""
    return None if polygon is None else tuple((x * factor, y * factor) for x, y in polygon)


def scale_bbox(bbox: BBox, factor: float) -> BBox:
    """Convert a box between pixel and point space (`factor = 72 / dpi` for pixels -> points)."""
    x0, y0, x1, y1 = bbox
    return (x0 * factor, y0 * factor, x1 * factor, y1 * factor)
