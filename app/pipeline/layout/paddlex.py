"""PP-DocLayoutV2 through PaddleX (gpu image): a thin adapter from PaddleX's layout output to our Regions.

PaddleX's layout predictor yields one result per image whose `json["res"]["boxes"]` is a list of
`{"cls_id", "label", "score", "coordinate": [x0, y0, x1, y1]}` in pixels of the image it was given; for
PP-DocLayoutV2 the list is already in reading order (its processor sorts the boxes by the order its pointer
network predicts), and that order is kept: every Region carries its position (`order`), and assembly emits the
blocks in it instead of re-sorting them. The model's own label rides along (`kind`), so the official pipeline's
per-label rules (image furniture is never sent, formula numbers lose their `$`) can be applied later.

Post-processing is the official PaddleOCR-VL pipeline's (`configs/pipelines/PaddleOCR-VL.yaml` in paddlex 3.7.2):
per-class score thresholds, layout NMS, no unclipping and per-class box merging (`large` keeps the outer box of
nested ones for charts, formulas and titles, so a title is not read twice), then the pipeline's own overlap filter
(`overlap.drop_overlapping`) and, in `vl` mode, its `merge_layout_blocks` (`merge.group_regions`). The same config's
`merge_layout_blocks: True` (`MERGE_LAYOUT_BLOCKS`) makes `vl` mode read runs of neighbouring `text` regions with one
VLM request: the rule is layout/merge.py's, applied by page.analyse_for_vl to this engine's regions only.

The model runs on CPU threads (paddlepaddle CPU wheel) so the GPU stays vLLM's; each worker gets
`threads_per_worker` of them (PaddleX's own default is 10 per predictor, far too many beside other workers).
Everything PaddleX-specific is in `PaddlexLayoutEngine.load/detect`; `regions_from_paddlex` is pure and unit-tested
on recorded outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline.layout.overlap import drop_overlapping
from app.pipeline.primitives import Region
from app.pipeline.result import BlockType
from app.settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "PP-DocLayoutV2"

# PP-DocLayoutV2's 25 classes in our vocabulary. Furniture the official pipeline keeps out of Markdown
# (number, footnote, header/footer and their images, aside text) maps to header/footer/page_number, which
# assembly also keeps out of Markdown.
PADDLEX_LABELS: dict[str, BlockType] = {
    "abstract": "text",
    "algorithm": "text",
    "aside_text": "footer",
    "chart": "chart",
    "content": "text",
    "display_formula": "formula",
    "doc_title": "title",
    "figure_title": "caption",
    "footer": "footer",
    "footer_image": "footer",
    "footnote": "footer",
    "formula_number": "text",
    "header": "header",
    "header_image": "header",
    "image": "figure",
    "inline_formula": "formula",
    "number": "page_number",
    "paragraph_title": "title",
    "reference": "reference",
    "reference_content": "reference",
    "seal": "figure",
    "table": "table",
    "text": "text",
    "vertical_text": "text",
    "vision_footnote": "caption",
}


# PP-DocLayoutV2's class ids (PaddleOCR-VL.yaml, paddlex 3.7.2): 0.4 for text, titles and formulas, 0.45 for
# seals, 0.5 for the rest.
_LOW_THRESHOLD_CLASSES = {5: "display_formula", 6: "doc_title", 15: "inline_formula", 17: "paragraph_title",
                          22: "text", 23: "vertical_text"}
LAYOUT_THRESHOLDS: dict[int, float] = {
    cls_id: 0.4 if cls_id in _LOW_THRESHOLD_CLASSES else 0.45 if cls_id == 20 else 0.5 for cls_id in range(25)
}
# `large` for chart (3), display formula (5), doc title (6), inline formula (15), paragraph title (17).
LAYOUT_MERGE_MODES: dict[int, str] = {cls_id: "large" if cls_id in (3, 5, 6, 15, 17) else "union" for cls_id in range(25)}
LAYOUT_UNCLIP_RATIO = (1.0, 1.0)
# `merge_layout_blocks` (PaddleOCR-VL.yaml): in `vl` mode, text regions that continue each other are read together.
MERGE_LAYOUT_BLOCKS = True
# Everything `predict` is called with, in one place (tests compare it with the official config).
PREDICT_KWARGS: dict[str, Any] = {
    "threshold": LAYOUT_THRESHOLDS,
    "layout_nms": True,
    "layout_unclip_ratio": LAYOUT_UNCLIP_RATIO,
    "layout_merge_bboxes_mode": LAYOUT_MERGE_MODES,
}


def _boxes(result: Any) -> list[Mapping[str, Any]]:
    """The box list of one PaddleX result: a result object (`.json`), `{"res": {...}}` or the inner dict."""
    data = getattr(result, "json", result)
    if isinstance(data, Mapping) and "res" in data and isinstance(data["res"], Mapping):
        data = data["res"]
    if not isinstance(data, Mapping) or "boxes" not in data:
        raise ValueError("not a PaddleX layout result: no 'boxes'")
    return list(data["boxes"])


def regions_from_paddlex(result: Any, *, width: int, height: int, min_score: float = 0.0) -> list[Region]:
    """Turn one PaddleX layout result into Regions (pixel boxes clipped to the image, labels mapped), keeping
    the model's order in `Region.order` and its label in `Region.kind`. Boxes under `min_score` and those the
    official pipeline's overlap filter drops (slivers, nested duplicates) are left out; unknown labels become
    text."""
    regions: list[Region] = []
    for box in _boxes(result):
        name = str(box.get("label", ""))
        label = PADDLEX_LABELS.get(name)
        if label is None:
            log.warning("unknown PaddleX layout label %r read as text", name)
            label = "text"
        score = float(box.get("score", 1.0))
        if score < min_score:
            continue
        x0, y0, x1, y1 = (float(v) for v in box["coordinate"][:4])
        x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
        y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
        regions.append(Region(label=label, bbox=(x0, y0, x1, y1), score=score, kind=name))
    return [replace(region, order=order) for order, region in enumerate(drop_overlapping(regions))]


class PaddlexLayoutEngine:
    """LayoutEngine over PaddleX's PP-DocLayoutV2 predictor (loaded from the baked model dir, offline)."""

    name = "paddlex"
    merge_layout_blocks = MERGE_LAYOUT_BLOCKS

    def __init__(self, model_dir: Path, *, threads: int = 1, device: str = "cpu") -> None:
        self.model_dir = model_dir
        self.threads = threads
        self.device = device
        self._model: Any = None

    def load(self) -> None:
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"{MODEL_NAME} missing: {self.model_dir} (built into the gpu image)")
        # PaddleX reads its CPU thread count from here when it builds the predictor's options (default 10).
        os.environ["PADDLE_PDX_CPU_NUM_THREADS"] = str(self.threads)
        from paddlex import create_model  # gpu image only

        self._model = create_model(model_name=MODEL_NAME, model_dir=str(self.model_dir), device=self.device)

    def warmup(self) -> None:
        page = np.full((400, 300, 3), 255, dtype=np.uint8)
        page[40:60, 30:270] = 0
        self.detect(page)

    def health(self) -> bool:
        return self._model is not None

    def detect(self, image: np.ndarray) -> list[Region]:
        if self._model is None:
            self.load()
        height, width = image.shape[:2]
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # PaddleX reads images as BGR
        results = list(self._model.predict(bgr, batch_size=1, **PREDICT_KWARGS))
        if not results:
            return []
        return regions_from_paddlex(results[0], width=width, height=height)


def create_paddlex_layout_engine(settings: Settings) -> PaddlexLayoutEngine:
    return PaddlexLayoutEngine(settings.models_path / MODEL_NAME, threads=settings.threads_per_worker)
