"""Is a region's text a formula? The layout model's word is not enough on scans: CDLA labels plain headings
`equation` ("Changes to packages in the tools category" on a manual page), and the block then comes out as
`$$ ... $$` with a formula crop. A formula writes mathematics, so its text has at least one mathematical sign.

The rule (`reads_as_formula`): a region the layout calls a formula stays one when its text has a mathematical
symbol (Unicode category Sm: `= + < > ± × ÷ ∑ ∫ √ ∞ ≤ ...`; ASCII `^ _ { } \\ / * |`; a Greek letter; a
superscript or subscript digit), or when it is not made of words (single letters and numbers such as `x y 2`: a
formula the OCR read without its signs, or a function name: `sin x`, `dx`). Text with no such sign and two or more
words, or one word of four letters or more, is prose or a heading.
"""

from __future__ import annotations

import re
import unicodedata

_ASCII_MATH = frozenset("^_{}\\/*|=+<>")
_WORD = re.compile(r"[^\W\d_]{2,}")
_TOKEN = re.compile(r"\S+")
_PUNCTUATION = ".,;:!?()[]\"'"


def has_math_symbol(text: str) -> bool:
    for char in text:
        if char in _ASCII_MATH or unicodedata.category(char) == "Sm":
            return True
        name = unicodedata.name(char, "")
        if name.startswith("GREEK") or name.startswith(("SUPERSCRIPT", "SUBSCRIPT")):
            return True
    return False


def reads_as_formula(text: str) -> bool:
    """True when `text`, labelled a formula by layout, can be one (see the module docstring)."""
    text = text.strip()
    if not text or has_math_symbol(text):
        return True
    words = [word for token in _TOKEN.findall(text) if _WORD.fullmatch(word := token.strip(_PUNCTUATION))]
    return len(words) < 2 and not any(len(word) >= 4 for word in words)
