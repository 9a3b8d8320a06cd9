"""Underscores tesseract drops: `начальная_кодировка`, `AF_UNSPEC`, `vi_diff` come out of its Cyrillic model as two
words (`начальная кодировка`, `AF _UNSPEC`), the underscore lost or stuck to one side. Identifiers like these are
common in technical documents, and a lost underscore costs two wrong words and a missing one.

The pixels settle it: between two neighbouring words of a line, an underscore is a thin dark stroke across the whole
gap at the foot of the line, with nothing above it. Words joined that way become one word (`a_b`); a word that
already ends or starts with the underscore is joined to its neighbour without the space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.pipeline.recognize.tesseract import Word

# The stroke fills at least this share of the gap's columns (the words' boxes take some of the stroke)...
COVER = 0.6
# ... and is at most this share of the line's height thick (an underscore is a rule, a letter is not).
MAX_THICKNESS = 0.2
# ... and lies no higher than this share of the line's height above the lower word box's foot.
FOOT = 0.2
# A gap wider than this many line heights is a space between words, whatever lies in it (a rule, a table border).
MAX_GAP = 1.5
# A row of the gap belongs to the stroke when this share of it is ink (an antialiased rule spans two rows).
STROKE_ROW = 0.3
# Where two word boxes touch, the stroke covers this share of the columns within JOINT_REACH line heights of the
# joint.
JOINT_COVER = 0.9
JOINT_REACH = 0.25
# ... with no ink in this many line heights above it.
CLEAR_ABOVE = 0.3
# Darker than this (0-255) is ink.
INK = 128


def _underscore_between(image: np.ndarray, left: Word, right: Word) -> bool:
    """Whether the gap between `left` and `right` (one line, left to right) holds an underscore and nothing else."""
    x0, x1 = int(left.bbox[2]), int(right.bbox[0])
    top = int(min(left.bbox[1], right.bbox[1]))
    bottom = int(max(left.bbox[3], right.bbox[3]))
    height = bottom - top
    if height <= 0 or x1 - x0 > MAX_GAP * height:
        return False
    if x1 - x0 < 2:
        return _underscore_at_joint(image, left, right, height)
    # The stroke sits at the baseline or a little under it: look from the top of the line to a third of a line
    # height below its boxes.
    patch = image[top: min(image.shape[0], bottom + height // 3), x0 + 1: x1 - 1]
    if patch.size == 0:
        return False
    band = (patch.mean(axis=2) if patch.ndim == 3 else patch) < INK
    rows = np.nonzero(band.mean(axis=1) >= STROKE_ROW)[0]
    if rows.size == 0 or rows.max() - rows.min() + 1 > max(2, MAX_THICKNESS * height):
        return False
    # at the foot of the line, not half-way up (a dash between two words)
    if top + rows.min() < min(left.bbox[3], right.bbox[3]) - FOOT * height:
        return False
    stroke = band[rows.min(): rows.max() + 1]
    if stroke.any(axis=0).mean() < COVER:
        return False
    # Nothing else in the gap but the edges of the neighbouring letters: a hyphen or a letter tesseract left out
    # has ink above the stroke in the middle of the gap.
    above = band[: rows.min()].any(axis=0)
    edge = above.size // 4
    return not above[edge: above.size - edge].any()


def _underscore_at_joint(image: np.ndarray, left: Word, right: Word, height: int) -> bool:
    """Whether an underscore links two words whose boxes touch: tesseract put the stroke in one word's box and left
    it out of its text ("--output=файл" + "результата"). The stroke is a rule at the foot of the line running from
    the joint into one of the boxes with nothing above it (a letter's flat foot, as д's, has its stems above)."""
    joint = int(round((left.bbox[2] + right.bbox[0]) / 2))
    reach = max(2, int(JOINT_REACH * height))
    bottom = int(max(left.bbox[3], right.bbox[3]))
    top = max(0, bottom - int(FOOT * height) - int(CLEAR_ABOVE * height) - 2)
    for x0, x1 in ((joint - reach, joint), (joint, joint + reach)):
        patch = image[top: min(image.shape[0], bottom + height // 3), max(0, x0): x1]
        if patch.size == 0:
            continue
        band = (patch.mean(axis=2) if patch.ndim == 3 else patch) < INK
        rows = np.nonzero(band.mean(axis=1) >= JOINT_COVER)[0]
        if not rows.size or rows.max() - rows.min() + 1 > max(2, MAX_THICKNESS * height):
            continue
        if top + rows.min() < bottom - FOOT * height - 1:  # not at the foot
            continue
        if not band[max(0, rows.min() - int(CLEAR_ABOVE * height)): max(0, rows.min() - 1)].any():
            return True
    return False


def _joined(left: Word, right: Word, text: str) -> Word:
    box = (min(left.bbox[0], right.bbox[0]), min(left.bbox[1], right.bbox[1]),
           max(left.bbox[2], right.bbox[2]), max(left.bbox[3], right.bbox[3]))
    return Word(text, box, min(left.confidence, right.confidence), left.in_dictionary and right.in_dictionary)


def join_underscores(words: Sequence[Word], image: np.ndarray) -> list[Word]:
    """`words` (one line's, left to right, pixel boxes of `image`, RGB or grey) with the pairs an underscore links
    joined into one word."""
    out: list[Word] = []
    for word in words:
        if out:
            previous = out[-1]
            if previous.text.endswith("_") or word.text.startswith("_"):
                if _close(previous, word):
                    out[-1] = _joined(previous, word, previous.text + word.text)
                    continue
            elif previous.text[-1:].isalnum() and word.text[:1].isalnum() and _underscore_between(image, previous,
                                                                                                   word):
                out[-1] = _joined(previous, word, f"{previous.text}_{word.text}")
                continue
        out.append(word)
    return out


def _close(left: Word, right: Word) -> bool:
    """Whether two words are near enough to be one (an underscore's stroke between them at most)."""
    height = max(left.bbox[3] - left.bbox[1], right.bbox[3] - right.bbox[1])
    return right.bbox[0] - left.bbox[2] <= MAX_GAP * height
