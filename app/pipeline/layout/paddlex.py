"""PP-DocLayoutV3 / PP-DocLayoutV2 through PaddleX (gpu image): a thin adapter from PaddleX's layout output to our
Regions.

PaddleX's layout predictor yields one result per image whose `json["res"]["boxes"]` is a list of
`{"cls_id", "label", "score", "coordinate": [x0, y0, x1, y1]}` in pixels of the image it was given, plus
`polygon_points` (the region's outline, from PP-DocLayoutV3's masks) in every shape mode but `rect`. The list is
already in reading order (both models predict one), and that order is kept: every Region carries its position
(`order`), and assembly emits the blocks in it instead of re-sorting them. The model's own label rides along
(`kind`), so the official pipeline's per-label rules (image furniture is never sent, formula numbers lose their `$`)
can be applied later, and so does the outline (`polygon`), which the VLM's crop keeps to (layout/crop.py).

Which model: the one paired with the served VLM (app/models_manifest.py `MODEL_SETS`, keyed by VLM_MODEL_NAME).
Post-processing is the official pipeline's for it (paddlex 3.7.2 `configs/pipelines/PaddleOCR-VL-1.6.yaml` for
PP-DocLayoutV3: one threshold 0.3, shape mode `auto`; `PaddleOCR-VL.yaml` for PP-DocLayoutV2: per-class thresholds):
layout NMS, no unclipping and per-class box merging (`large` keeps the outer box of nested ones for charts,
formulas and titles, so a title is not read twice). The predictor's own overlap filter is switched off
(`filter_overlap_boxes=False`, as `paddleocr_vl/pipeline.py` calls it) because the pipeline filters once itself
(`overlap.drop_overlapping`); then, in `vl` mode, its `merge_layout_blocks` (`merge.group_regions`).

The model runs on the GPU when Paddle is the CUDA build and sees one (the image installs paddlepaddle-gpu: layout
beside vLLM, as the official image and PaddleX's serving run it), else on CPU threads (`threads_per_worker` of them;
PaddleX's own default is 10 per predictor, far too many beside other workers), which is what the build's smoke
test and the rehearsal (scripts/rehearse_image.sh) use. Everything PaddleX-specific is in
`PaddlexLayoutEngine.load/detect`; `regions_from_paddlex` is pure and unit-tested on recorded outputs.
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

# PP-DocLayoutV2's and PP-DocLayoutV3's 25 classes (one list: paddlex 3.7.2 `_LABEL_DOC_LAYOUT_V2V3`) in our
# vocabulary. Furniture the official pipeline keeps out of Markdown (number, footnote, header/footer and their
# images, aside text) maps to header/footer/page_number, which assembly also keeps out of Markdown.
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
# PP-DocLayoutV3 (PaddleOCR-VL-1.6.yaml): one threshold for every class.
V3_THRESHOLD = 0.3
# `large` for chart (3), display formula (5), doc title (6), inline formula (15), paragraph title (17); both yamls.
LAYOUT_MERGE_MODES: dict[int, str] = {cls_id: "large" if cls_id in (3, 5, 6, 15, 17) else "union" for cls_id in range(25)}
LAYOUT_UNCLIP_RATIO = (1.0, 1.0)
# The pipeline's default `layout_shape_mode` (paddleocr_vl/pipeline.py `predict`): PaddleX picks rectangle, quad or
# polygon per region from the mask (PP-DocLayoutV2 has none: rectangles).
LAYOUT_SHAPE_MODE = "auto"
# `merge_layout_blocks` (both yamls): in `vl` mode, text regions that continue each other are read together.
MERGE_LAYOUT_BLOCKS = True


def _predict_kwargs(threshold: float | dict[int, float]) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "layout_nms": True,
        "layout_unclip_ratio": LAYOUT_UNCLIP_RATIO,
        "layout_merge_bboxes_mode": LAYOUT_MERGE_MODES,
        "layout_shape_mode": LAYOUT_SHAPE_MODE,
        "filter_overlap_boxes": False,  # filtered once, by regions_from_paddlex, as the official pipeline does
    }


# Everything `predict` is called with, per model, in one place (tests compare it with the official configs).
PREDICT_KWARGS_BY_MODEL: dict[str, dict[str, Any]] = {
    "PP-DocLayoutV3": _predict_kwargs(V3_THRESHOLD),
    "PP-DocLayoutV2": _predict_kwargs(LAYOUT_THRESHOLDS),
}
MODEL_NAME = "PP-DocLayoutV3"  # the default set's (app.models_manifest.LAYOUT_MODEL)
PREDICT_KWARGS = PREDICT_KWARGS_BY_MODEL[MODEL_NAME]


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
        regions.append(Region(label=label, bbox=(x0, y0, x1, y1), score=score, kind=name,
                              polygon=_outline(box.get("polygon_points"))))
    return [replace(region, order=order) for order, region in enumerate(drop_overlapping(regions))]


def _outline(points: Any) -> tuple[tuple[float, float], ...] | None:
    """A region's `polygon_points` as a tuple of (x, y) pixels; None when there is none or it is no polygon."""
    if points is None:
        return None
    pairs = np.asarray(points, dtype=np.float64).reshape(-1, 2) if len(points) else np.empty((0, 2))
    return tuple((float(x), float(y)) for x, y in pairs) if len(pairs) >= 3 else None


def layout_device() -> str:
    """`gpu:0` where Paddle is the CUDA build and sees a GPU (the image), else `cpu` (the build's smoke test)."""
    try:
        import paddle
    except ImportError:  # PaddleX's own import fails just after, with the better message
        return "cpu"
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu:0"
    return "cpu"


class PaddlexLayoutEngine:
    """LayoutEngine over PaddleX's PP-DocLayoutV3/V2 predictor (loaded from the baked model dir, offline)."""

    name = "paddlex"
    merge_layout_blocks = MERGE_LAYOUT_BLOCKS

    def __init__(self, model_dir: Path, *, model_name: str = MODEL_NAME, threads: int = 1,
                 device: str | None = None) -> None:
        if model_name not in PREDICT_KWARGS_BY_MODEL:
            raise ValueError(f"no PaddleX layout settings for {model_name!r}: {', '.join(PREDICT_KWARGS_BY_MODEL)}")
        self.model_dir = model_dir
        self.model_name = model_name
        self.predict_kwargs = PREDICT_KWARGS_BY_MODEL[model_name]
        self.threads = threads
        self.device = device  # None: layout_device() at load
        self._model: Any = None

    def load(self) -> None:
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"{self.model_name} missing: {self.model_dir} (built into the gpu image)")
        # PaddleX reads its CPU thread count from here when it builds the predictor's options (default 10).
        os.environ["PADDLE_PDX_CPU_NUM_THREADS"] = str(self.threads)
        from paddlex import create_model  # gpu image only

        device = self.device or layout_device()
        self._model = create_model(model_name=self.model_name, model_dir=str(self.model_dir), device=device)
        self.device = device
        log.info("%s loaded on %s", self.model_name, device)

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
        results = list(self._model.predict(bgr, batch_size=1, **self.predict_kwargs))
        if not results:
            return []
        return regions_from_paddlex(results[0], width=width, height=height)


def create_paddlex_layout_engine(settings: Settings) -> PaddlexLayoutEngine:
    """The layout model paired with the served VLM (the default set's where the VLM is of no known set)."""
    from app.models_manifest import paired_layout

    name = paired_layout(settings.vlm_model_name)
    return PaddlexLayoutEngine(settings.models_path / name, model_name=name, threads=settings.threads_per_worker)
