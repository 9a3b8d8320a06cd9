"""Latin words inside Cyrillic lines: tesseract's `rus` model reads many of them as Cyrillic look-alikes
("аргороз" for apropos, "сгоп" for cron, "-УЕТ" for -vET, "-п" for -n); PP-OCR reads them right and sure of itself.

On a page tesseract read, a word is a suspect when it holds a Cyrillic letter, only Cyrillic letters that stand in
for Latin ones (`_LATIN_TWINS`), and is no Russian word (pyspellchecker's Russian list), or tesseract itself was unsure of it (a Latin word garbled by the English model,
"--sShow-all"). PP-OCR reads each suspect on its own box, and its reading replaces tesseract's when PP-OCR is sure
(every character) and the reading is plain ASCII without the look-alike signature of a Cyrillic word read as Latin
(script.py), and holds a letter no Cyrillic letter looks like (so "с", "в", "сок" read as "c", "B", "cok" stay
Cyrillic), or is a command-line option ("-n"). On bench/languages.py's pages this mends 10-20 words a page and costs
one PP-OCR strip per suspect (a few milliseconds each).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache

from app.pipeline.primitives import TextLine
from app.pipeline.recognize.lines import ReadLine
from app.pipeline.recognize.script import _SIGNATURE
from app.pipeline.recognize.tesseract import Word

# PP-OCR's reading wins only when sure of every character.
SURE_MEAN = 0.95
SURE_WEAKEST = 0.8
# A command-line option ("-e" read "-е") is Latin whatever its letters: a lower bar.
OPTION_MEAN = 0.85
OPTION_WEAKEST = 0.6
# tesseract's confidence under which even a Latin word of its is checked.
TESSERACT_UNSURE = 0.6
# Latin letters with no Cyrillic look-alike (in print, same case): one of them shows the word is Latin.
_LATIN_ONLY = set("bdfghijlqrstvwzDFGIJLNQRSUVWZ")
# Cyrillic letters tesseract puts for Latin ones (а for a, г for r, з for s, п for n, У for v, ...): a Latin word
# misread comes out in these alone, while most Russian words hold another letter (б, ж, л, ч, ы, я, ...) and are
# not suspects at all, which keeps PP-OCR's re-reads to a few words a page.
_LATIN_TWINS = set("авгдезийкмнопрстухьАВГДЕЗИЙКМНОПРСТУХЬ")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LETTER_RUNS = re.compile(r"[^\W\d_]+")
_CAPITALS_SIGNATURE = re.compile(r"JI|[A-Z][0-9][A-Z]|BI")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


@lru_cache(maxsize=1)
def russian_words() -> frozenset[str]:
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="ru").word_frequency.dictionary)


def suspect(word: Word) -> bool:
    """Whether tesseract's reading of `word` may be a Latin word in Cyrillic look-alikes (or a garbled one)."""
    if word.confidence < TESSERACT_UNSURE:
        return True
    if not _CYRILLIC.search(word.text) or any(char.isalpha() and char not in _LATIN_TWINS for char in word.text):
        return False
    known = russian_words()
    runs = _LETTER_RUNS.findall(word.text.lower())
    return bool(runs) and any(run not in known for run in runs)


def better_latin(tesseract_text: str, read: ReadLine) -> bool:
    """Whether PP-OCR's `read` of a suspect word replaces tesseract's reading."""
    text = read.text.strip()
    option = text.startswith("-") and tesseract_text.startswith("-")
    sure = (read.confidence >= OPTION_MEAN and read.weakest >= OPTION_WEAKEST) if option else (
        read.confidence >= SURE_MEAN and read.weakest >= SURE_WEAKEST)
    if not text or text == tesseract_text or not sure:
        return False
    if not _PRINTABLE_ASCII.match(text) or _SIGNATURE.search(text) or not any(c.isalpha() for c in text):
        return False
    return any(char in _LATIN_ONLY for char in text) or option


def cyrillic_in_latin(word: Word) -> bool:
    """Whether tesseract's English model read a Cyrillic word in capitals as Latin look-alikes: "YCJIOBME",
    "PA3MEP" (Л as JI, З as 3). Only capitals: in lower case "bl" and "Il" are English ("block", "Illegal")."""
    letters = [char for char in word.text if char.isalpha()]
    return (len(letters) >= 3 and all("A" <= char <= "Z" for char in letters)
            and bool(_CAPITALS_SIGNATURE.search(word.text)))


def mend_cyrillic_words(lines: Sequence[tuple[TextLine, list[Word]]],
                        read_cyrillic: Callable[[tuple[float, float, float, float]], str]
                        ) -> list[tuple[TextLine, list[Word]]]:
    """`lines` with each word of Cyrillic read as Latin (`cyrillic_in_latin`) read again by the Cyrillic model
    alone (`read_cyrillic(box)`), kept when that reading is Cyrillic."""
    mended = []
    for line, words in lines:
        new_words = []
        for word in words:
            if cyrillic_in_latin(word):
                text = read_cyrillic(word.bbox).strip()
                if text and _CYRILLIC.search(text) and not re.search(r"[A-Za-z]", text):
                    word = word._replace(text=text)
            new_words.append(word)
        mended.append((line, new_words))
    return mended


def mend_latin_words(lines: Sequence[tuple[TextLine, list[Word]]],
                     read_boxes: Callable[[list[tuple[float, float, float, float]]], list[ReadLine]]
                     ) -> list[TextLine]:
    """`lines` (tesseract's, with their words) with each suspect word PP-OCR reads surely as Latin replaced;
    `read_boxes` reads pixel boxes of the page with PP-OCR."""
    chosen = [(k, j) for k, (_, words) in enumerate(lines) for j, word in enumerate(words) if suspect(word)]
    if not chosen:
        return [line for line, _ in lines]
    reads = read_boxes([lines[k][1][j].bbox for k, j in chosen])
    texts = [[w.text for w in words] for _, words in lines]
    for (k, j), read in zip(chosen, reads, strict=True):
        if better_latin(texts[k][j], read):
            texts[k][j] = read.text.strip()
    return [replace(line, text=" ".join(words)) for (line, _), words in zip(lines, texts, strict=True)]
