"""Where a page's text comes from: the `auto` mode's trust decision, in one place.

`auto` reads a page's text layer when it can be trusted and the pixels (OCR) otherwise; `text` and `ocr` mode
always take one source. `is_trustworthy` judges the extracted lines; `decide_source` applies the mode.
"""

from __future__ import annotations

import re

from app.errors import InvalidParameter
from app.pipeline.primitives import TextLayer
from app.pipeline.result import PageSource

MIN_CHARS = 20  # fewer visible characters than this: nothing worth trusting, let OCR look at the pixels
MAX_BAD_RATIO = 0.05
MIN_WORDLIKE_RATIO = 0.6
IMAGE_COVER_RATIO = 0.5
SPARSE_CHARS_PER_PAGE = 200  # a page-sized image with fewer characters than this is a scan with stray text


def is_trustworthy(layer: TextLayer, page_area: float, image_area: float = 0.0) -> bool:
    """Whether `auto` mode may use the text layer instead of OCR for this page.

    False for pages without (enough) text, for text layers that are mostly replacement, control or private-use
    characters or symbol soup (fonts without a usable encoding), for Latin text without vowels (fonts whose codes
    map to the wrong letters), and for pages that a large image covers while the text is sparse (scans with a
    stray caption or stamp). `image_area` is the page area (points squared) covered by images."""
    text = " ".join(line.text for line in layer.lines)
    visible = len(text) - len(_SPACE.findall(text))
    if visible < MIN_CHARS:
        return False
    if len(_BAD.findall(text)) > MAX_BAD_RATIO * visible:
        return False
    if len(_ALNUM.findall(text)) < 0.5 * visible:
        return False
    if not _words_look_real(text):
        return False
    if page_area > 0 and image_area >= IMAGE_COVER_RATIO * page_area and visible < SPARSE_CHARS_PER_PAGE:
        return False
    return True


_SPACE = re.compile(r"\s")
_ALNUM = re.compile(r"[^\W_]")
# Replacement character, C0/C1 controls, private use areas: what mis-encoded fonts extract as.
_BAD = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\U000f0000-\U0010ffff]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u00ff]{2,}")
_HAS_VOWEL = re.compile(
    "[aeiouyAEIOUY\u00c0-\u00c6\u00c8-\u00cf\u00d2-\u00d6\u00d8-\u00dd\u00e0-\u00e6\u00e8-\u00ef\u00f2-\u00f6\u00f8-\u00fd\u00ff]"
)


def _words_look_real(text: str) -> bool:
    """Latin-script words should mostly contain a vowel (or be acronyms); other scripts are not judged here."""
    latin = _LATIN_WORD.findall(text)
    if len(latin) < 10:
        return True
    real = sum(1 for word in latin if word.isupper() or _HAS_VOWEL.search(word))
    return real >= MIN_WORDLIKE_RATIO * len(latin)


def decide_source(mode: str, trustworthy: bool) -> PageSource:
    """Where a page's text comes from in a given mode (`vl` pages are analysed separately)."""
    if mode == "text":
        return "text"
    if mode == "ocr":
        return "ocr"
    if mode == "auto":
        return "text" if trustworthy else "ocr"
    raise InvalidParameter(f"mode {mode!r} is not processed page by page")
