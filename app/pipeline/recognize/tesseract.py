"""tesseract through `tesserocr` (its C++ API, models loaded once per process), for the scripts PP-OCR cannot read.

One `PyTessBaseAPI` per language set and page-segmentation mode is kept for the life of the worker (loading
`rus+eng` takes a few hundred milliseconds). OMP_THREAD_LIMIT is set to the worker's thread budget before the
library loads: with several worker processes each tesseract using every core, they thrash.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from app.pipeline.primitives import TextLine
from app.pipeline.recognize.languages import tessdata_dir

class Word(NamedTuple):
    text: str
    bbox: tuple[float, float, float, float]  # pixels
    confidence: float  # 0-1
    in_dictionary: bool = False  # tesseract found the word in its language's dictionary


# A line re-read alone gets this much white round it (pixels at the render's DPI): tesseract wants a margin.
LINE_PAD_PX = 6


class TesseractReader:
    """Reads whole pages (`read_page`) or single line crops (`read_line`) with tesseract's LSTM models."""

    name = "tesseract"

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads
        self._apis: dict[tuple[str, int], Any] = {}

    def _api(self, langs: str, psm: int):
        key = (langs, psm)
        if key not in self._apis:
            os.environ.setdefault("OMP_THREAD_LIMIT", str(self.threads))
            import tesserocr

            directory = tessdata_dir()
            if directory is None:
                raise RuntimeError("no tessdata directory: install tesseract-ocr and its language packs")
            self._apis[key] = tesserocr.PyTessBaseAPI(path=str(directory), lang=langs, psm=psm,
                                                       oem=tesserocr.OEM.LSTM_ONLY)
        return self._apis[key]

    def load(self, langs: str, psm: int | None = None) -> None:
        """Load `langs` for page reading (or for `psm`) now, in a worker's warm-up, rather than on its first page."""
        import tesserocr

        self._api(langs, tesserocr.PSM.AUTO if psm is None else psm)

    def read_page(self, image: np.ndarray, langs: str, dpi: float | None = None) -> list[TextLine]:
        """The page's lines (tesseract's own layout analysis), pixel boxes, in tesseract's reading order."""
        return [line for line, _ in self.read_page_words(image, langs, dpi)]

    def read_page_words(self, image: np.ndarray, langs: str,
                        dpi: float | None = None) -> list[tuple[TextLine, list[Word]]]:
        """Each line of the page with its words (text, pixel box, confidence 0-1)."""
        import tesserocr

        api = self._api(langs, tesserocr.PSM.AUTO)
        api.SetImage(_grey(image))
        if dpi:
            api.SetSourceResolution(int(round(dpi)))
        api.Recognize()
        iterator = api.GetIterator()
        lines: list[tuple[TextLine, list[Word]]] = []
        words: list[Word] = []
        level, line_level = tesserocr.RIL.WORD, tesserocr.RIL.TEXTLINE

        def close_line() -> None:
            if words:
                x0 = min(w.bbox[0] for w in words)
                y0 = min(w.bbox[1] for w in words)
                x1 = max(w.bbox[2] for w in words)
                y1 = max(w.bbox[3] for w in words)
                score = sum(w.confidence for w in words) / len(words)
                lines.append((TextLine(text=" ".join(w.text for w in words), bbox=(x0, y0, x1, y1), score=score),
                              list(words)))
                words.clear()

        if iterator is not None:
            for item in tesserocr.iterate_level(iterator, level):
                if item.IsAtBeginningOf(line_level):
                    close_line()
                text = (item.GetUTF8Text(level) or "").strip()
                box = item.BoundingBox(level)
                if text and box is not None:
                    words.append(Word(text, tuple(float(v) for v in box),  # type: ignore[arg-type]
                                      max(0.0, min(1.0, item.Confidence(level) / 100.0)),
                                      bool(item.WordIsFromDictionary())))
            close_line()
        api.Clear()
        return lines

    def read_word(self, image: np.ndarray, bbox: tuple[float, float, float, float], langs: str) -> str:
        """The text of one word box of `image` (RGB pixels), read alone."""
        import tesserocr

        return self.read_line(image, bbox, langs, psm=tesserocr.PSM.SINGLE_WORD)

    def read_line(self, image: np.ndarray, bbox: tuple[float, float, float, float], langs: str,
                  psm: int | None = None) -> str:
        """The text of one line box of `image` (RGB pixels), read alone."""
        return self.read_box(image, bbox, langs, psm)[0]

    def read_word_surely(self, image: np.ndarray, bbox: tuple[float, float, float, float],
                         langs: str) -> tuple[str, float]:
        """One word box of `image` read alone: its text and tesseract's confidence (0-1)."""
        import tesserocr

        return self.read_box(image, bbox, langs, tesserocr.PSM.SINGLE_WORD)

    def read_box(self, image: np.ndarray, bbox: tuple[float, float, float, float], langs: str,
                 psm: int | None = None) -> tuple[str, float]:
        """The text of one box of `image` (RGB pixels), read alone, and tesseract's mean confidence (0-1)."""
        import tesserocr

        height, width = image.shape[:2]
        x0, y0, x1, y1 = bbox
        crop = image[max(0, int(y0) - LINE_PAD_PX): min(height, int(y1) + LINE_PAD_PX),
                     max(0, int(x0) - LINE_PAD_PX): min(width, int(x1) + LINE_PAD_PX)]
        if crop.size == 0:
            return "", 0.0
        api = self._api(langs, tesserocr.PSM.SINGLE_LINE if psm is None else psm)
        api.SetImage(_grey(np.ascontiguousarray(crop)))
        text = " ".join((api.GetUTF8Text() or "").split())
        confidence = max(0.0, min(1.0, api.MeanTextConf() / 100.0))
        api.Clear()
        return text, confidence

    def health(self) -> bool:
        return True


def _grey(image: np.ndarray):
    """The pixels as an 8-bit grey PIL image: tesseract binarises grey, and handing it RGB makes it convert the page
    itself, slower (0.14 s of a page's 1.8 s on bench/languages.py's pages, same words read)."""
    from PIL import Image

    if image.ndim == 2:
        return Image.fromarray(image)
    import cv2

    return Image.fromarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
