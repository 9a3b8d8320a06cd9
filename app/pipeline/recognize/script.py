"""Which script a page (or a line) is written in, told from what PP-OCR read of it: no extra model, no extra pass.

PP-OCR's dictionaries have no Cyrillic, so a Russian line comes out as Latin look-alikes with the case and the
letters scrambled ("CTpaHIbI", "KOTopbIX", "ABTopcKne ∏paBa" for "страницы", "которых", "Авторские права") and a
low confidence. On bench/languages.py's pages (clean and worn, 200 DPI) PP-OCR's median line confidence is
0.72-0.88 on Russian pages and 0.976-0.999 on English ones; the share of lines under CONFIDENT is 0.64-0.86 on
Russian pages and at most 0.08 on English ones (tables, formulas and worn pages included). A line counts as
misread Cyrillic when it is unsure and shows the look-alike signature in at least a fifth of its words (two at
least): a capital
inside a lower-case word, digits inside a word of letters (3 for З, 4 for Ч, 6 for б), "bI"/"bl" for ы, "JI" for Л, or a symbol
PP-OCR uses for a Cyrillic letter (∏ for П). A page is Cyrillic when most of its letters sit in such lines. The
cost is a regular expression per word: nothing next to reading the page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.pipeline.primitives import TextLine

# PP-OCR's line confidence over which a line is taken as read right (English lines: median 0.98).
CONFIDENT = 0.9
# A line is misread Cyrillic when at least this share of its words (3+ characters) shows the signature.
LINE_WORD_SHARE = 0.2
# ... and at least this many words: one odd word is a formula ("u∈(R/AnnR(xi))×") more often than Russian.
MIN_MARKED_WORDS = 2
# A page is Cyrillic when this share of its letters is in misread-Cyrillic lines (Russian pages: 0.6-0.85,
# English: under 0.05).
PAGE_LETTER_SHARE = 0.35
# On the first few lines of a page (ocr.py's SCREEN_FIRST_LINES), before the whole sample is read, the bar is higher:
# three of four wide lines misread (Russian pages: most of them are), so that an English page never stops there.
EARLY_LETTER_SHARE = 0.7

_WORD = re.compile(r"\S{3,}")
_SIGNATURE = re.compile(
    r"[a-z][A-Z]"  # a capital inside a lower-case word: "CTpaHIbI"
    r"|[A-Za-z][0-9]+[A-Za-z]"  # digits inside letters: "KIO4eBOrO", "Ha3BaHIAMI"
    r"|[bB][Il]"  # ы
    r"|JI"  # Л
    r"|[\u220f\u0131]"  # ∏, ı for П, і (not π: formulas have it)
    r"|[\u0400-\u04ff]"  # a Cyrillic letter the dictionary does hold (PP-OCRv5 has a few)
)


def misread_cyrillic(line: TextLine) -> bool:
    """Whether PP-OCR's reading of `line` looks like Cyrillic read as Latin look-alikes."""
    if line.score is not None and line.score >= CONFIDENT:
        return False
    words = _WORD.findall(line.text)
    if not words:
        return False
    marked = sum(1 for word in words if _SIGNATURE.search(word))
    return marked >= max(MIN_MARKED_WORDS, LINE_WORD_SHARE * len(words))


def page_is_cyrillic(lines: Sequence[TextLine], final: bool = True) -> bool:
    """Whether most of the page's letters are in lines that look like misread Cyrillic; `final` False: `lines` are
    the first lines of a sample, and the bar is EARLY_LETTER_SHARE."""
    total = cyrillic = 0
    for line in lines:
        letters = sum(char.isalpha() for char in line.text)
        total += letters
        if misread_cyrillic(line):
            cyrillic += letters
    return total > 0 and cyrillic >= (PAGE_LETTER_SHARE if final else EARLY_LETTER_SHARE) * total
