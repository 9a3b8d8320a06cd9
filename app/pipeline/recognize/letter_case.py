"""Capitals tesseract read in lower case: its Russian dictionary prefers "имя" to "ИМЯ" (a bold section heading of
a manual), and for letters whose capital and small forms differ only in size (и/И, м/М, я/Я, о/О, с/С...) the pixels
of one word alone do not tell. The page does: words of those letters alone are as tall as the page's x-height when
small and as its capitals when capital, so a word read small but as tall as the capitals is in capitals.

On bench/languages.py's pages (200 DPI, 10.5 pt) words of small letters without ascenders or descenders are 17-18
px tall, words of such capitals 24-27, and "имя" (ИМЯ) 23-24.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from app.pipeline.recognize.tesseract import Word

# Small Cyrillic letters with neither ascender nor descender nor accent: their capitals differ in height alone.
_X_HEIGHT_LETTERS = set("авгежзиклмнопстхчшыьэюя")
# The page must show enough of both to measure them.
MIN_SMALL_WORDS = 10
MIN_CAPITAL_WORDS = 2
# A word read small is in capitals when its height is past this share of the way from x-height to capital height,
# and at most this much taller than the capitals (a larger heading in small letters is not).
CAPITAL_SHARE = 0.7
CAPITAL_MAX_RATIO = 1.15
# A line whose tallest word is this much taller than a usual line's is set larger (a running header, a title): its
# small letters reach the body's capital height ("пользователя" in "Руководство пользователя").
LARGER_LINE_RATIO = 1.2
# Capitals must stand this many pixels above x-height on a line for its heights to tell the case of a letter.
MIN_CASE_GAP_PX = 3


def _letters(text: str) -> str:
    """The word's letters when it is letters alone: brackets, commas and quotes reach past the letters' height."""
    return text if text.isalpha() else ""


def _height(word: Word) -> float:
    return word.bbox[3] - word.bbox[1]


def capitals_by_height(lines: Sequence[list[Word]]) -> list[list[Word]]:
    """`lines` (each line's words, pixel boxes) with each word of x-height letters read small but as tall as the
    page's capitals given in capitals."""
    small, capitals = [], []
    for words in lines:
        for word in words:
            letters = _letters(word.text)
            if len(letters) >= 2 and all(char in _X_HEIGHT_LETTERS for char in letters):
                small.append(_height(word))
            elif len(letters) >= 3 and letters.isupper() and all(c in _X_HEIGHT_LETTERS for c in letters.lower()):
                capitals.append(_height(word))
    if len(small) < MIN_SMALL_WORDS or len(capitals) < MIN_CAPITAL_WORDS:
        return [list(words) for words in lines]
    x_height, capital_height = statistics.median(small), statistics.median(capitals)
    if capital_height <= x_height:
        return [list(words) for words in lines]
    low, high = x_height + CAPITAL_SHARE * (capital_height - x_height), capital_height * CAPITAL_MAX_RATIO
    tallest = [max((_height(word) for word in words), default=0.0) for words in lines]
    usual_line = statistics.median(tallest)
    mended = []
    for words, line_height in zip(lines, tallest, strict=True):
        if line_height > LARGER_LINE_RATIO * usual_line:
            mended.append(list(words))
            continue
        new_words = []
        for word in words:
            letters = _letters(word.text)
            if (len(letters) >= 2 and all(char in _X_HEIGHT_LETTERS for char in letters)
                    and low <= _height(word) <= high):
                word = word._replace(text=word.text.upper())
            new_words.append(word)
        mended.append(new_words)
    return mended


# A one-letter option whose letter differs from its capital in size alone ("-c" / "-C", "-s" / "-S").
_SIZE_OPTION = re.compile(r"([\[(]?-)([cosuvwxzCOSUVWXZ])([,.;:\])]?)")
# A long option whose first letter is a capital told from its small form by size alone, the rest small ("--Sort").
_SIZE_LONG_OPTION = re.compile(r"^([\W_]{0,2}?--)([COSUVWXZ])(?=[a-z]{2})")


def option_case(text: str, word: Word, line: Sequence[Word]) -> str:
    """`text` (the reading of `word`) with the letter of a one-letter option in the case its height shows: the top
    of the word's box (the letter is the tallest thing in "-c,") against the tops of the line's words of x-height
    letters and of its words with a capital. Neither engine tells "-c" from "-C" by shape; the line does."""
    match = _SIZE_OPTION.fullmatch(text)
    if match is None:  # "--Sort": the rest of the name is small, so is its first letter (its size alone differs)
        return _SIZE_LONG_OPTION.sub(lambda m: m.group(1) + m.group(2).lower(), text)
    small = [w.bbox[1] for w in line if len(_letters(w.text)) >= 2 and all(c in _X_HEIGHT_LETTERS for c in w.text)]
    tall = [w.bbox[1] for w in line if len(_letters(w.text)) >= 2 and w.text[0].isupper() and w is not word]
    if not small or not tall:
        return text
    x_top, capital_top = statistics.median(small), statistics.median(tall)
    if x_top - capital_top < MIN_CASE_GAP_PX:
        return text
    letter = match.group(2)
    letter = letter.upper() if word.bbox[1] < (x_top + capital_top) / 2 else letter.lower()
    return match.group(1) + letter + match.group(3)
