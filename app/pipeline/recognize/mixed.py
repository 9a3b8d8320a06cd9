"""Latin words inside Cyrillic lines: tesseract reads a Cyrillic page with its Cyrillic model alone (`rus`), and
PP-OCR, which reads Latin script better than tesseract's `eng` and is already loaded, reads the words that are not
Russian.

Why not `rus+eng`: tesseract then runs its English model on every word the Russian one is unsure of, which costs a
third more on bench/languages.py's pages (1.66 s a page against 1.06), and reads Latin words worse than PP-OCR does
("sShow" for show, "Squeeze", "Stdout", "tell" for tel, "-1" for -l).

On a page tesseract read, a word is a suspect (`suspect`) when it may be Latin: it is no Russian word (pyspellchecker's
dictionary, or read unsurely), holds a Latin letter, starts with "-" (a command-line option), tesseract was unsure of
it, or all its 3+ letters have Latin look-alikes ("Маше" for Name: `lookalike`). An option read with a digit ("-1") is
read again by tesseract's English model, whose letter for it ("-l") stands (`option_letters`): the Cyrillic model has
no Latin "l" to choose. Suspects next to each other on a line are read by PP-OCR as one strip (one run of the
network instead of one per word) and split at its spaces; a run whose word count does not match is read word by word. PP-OCR's reading replaces
tesseract's when PP-OCR is sure (every character) and the reading is plain ASCII without the look-alike signature of
a Cyrillic word read as Latin (script.py), and holds a letter no Cyrillic letter looks like, or is a command-line
option, or tesseract's reading is no Russian word (so "с", "в", "сок" read as "c", "B", "cok" stay Cyrillic). A
suspect PP-OCR is not sure of is read by tesseract's English model on its own box, and that reading kept when
tesseract is surer of it than of the Cyrillic one and it looks Latin (`english_reading`). On bench/languages.py's
clean pages this takes word F1 from 0.750 (`rus` alone) to 0.958, above `rus+eng`'s 0.939, at 2.0 CPU-s a page
against 2.4 for the tesseract command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from app.pipeline.primitives import TextLine
from app.pipeline.recognize.letter_case import option_case
from app.pipeline.recognize.lines import ReadLine
from app.pipeline.recognize.script import _SIGNATURE
from app.pipeline.recognize.tesseract import Word

# PP-OCR's reading wins only when sure of every character.
SURE_MEAN = 0.95
SURE_WEAKEST = 0.8
# A command-line option ("-e" read "-е") is Latin whatever its letters: a lower bar.
OPTION_MEAN = 0.85
OPTION_WEAKEST = 0.5
# tesseract's confidence under which even a Russian word of its is checked.
TESSERACT_UNSURE = 0.6
# Latin letters with no Cyrillic look-alike (in print, same case): one of them shows the word is Latin.
_LATIN_ONLY = set("bdfghijlqrstvwzDFGIJLNQRSUVWZ")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
# Where one word is two parts: a hyphen between two word characters ("PID-ы"), or "=" ("--from-code=ФАЙЛ",
# "--color[=УСЛОВИЕ]").
_JOINS = re.compile(r"(?<=\w)-(?=\w)|=")
_NUMBER = re.compile(r"^[\d.,:;()\[\]%+/-]+$")
# Cyrillic capitals in Latin look-alikes: Л as JI, П as II, Ы as BI, З as 3 between capitals.
_CAPITALS_SIGNATURE = re.compile(r"JI|II|[A-Z][0-9][A-Z]|BI")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
# Quotes round a Latin word that are not ASCII: «--all».
_QUOTES = "\u00ab\u00bb\u201c\u201d\u201e"
# A command-line option, maybe quoted or bracketed: "-n", "--all", "«--block-size=M»", "[-v]" (tesseract: "—" too).
_OPTION = re.compile(r"^[\W_]{0,2}?[-\u2013\u2014]")
# Digits and the Latin letters they look like in print ("-l" read "-1", "-O" read "-0").
_DIGIT_LOOKALIKES = {"1": "lIi", "|": "lIi", "0": "oO"}
# tesseract's English reading of an option with a digit replaces it only when this sure (0-1). Its mean confidence
# of a word is low when it reads "l" there (0.2-0.85 on bench/languages.py's pages, each symbol's 0.89-0.98), so it
# is its choice of character that counts, not this.
OPTION_LETTER_SURE = 0.2


# Cyrillic letters drawn like Latin ones in print (upright, or in italic: т as m, д as g, и as u, п as n): a Russian
# dictionary word made of them alone may be a Latin word the Cyrillic model read as its look-alike ("TCP" -> "ТСР",
# "Name" -> "Маше", "maja" -> "тада").
_LOOKALIKES = set("АВЕКМНОРСТХУаеорсхуктдипш")
LOOKALIKE_MIN_LETTERS = 3


def lookalike(text: str) -> bool:
    """Whether `text` is a word of at least LOOKALIKE_MIN_LETTERS letters, each with a Latin look-alike."""
    letters = [char for char in text if char.isalpha()]
    return len(letters) >= LOOKALIKE_MIN_LETTERS and all(char in _LOOKALIKES for char in letters)


def russian(word: Word) -> bool:
    """Whether tesseract read `word` as a word of its language's dictionary, and surely."""
    return word.in_dictionary and word.confidence >= TESSERACT_UNSURE


def suspect(word: Word) -> bool:
    """Whether tesseract's Cyrillic reading of `word` may be a Latin word (or garbled): see the module's note."""
    text = word.text
    if _OPTION.match(text) and len(text) > 1:
        return True
    if not any(char.isalpha() for char in text):  # a number, or Latin letters read as signs ("№0545." for hosts.)
        return word.confidence < TESSERACT_UNSURE and not _NUMBER.match(text)
    return bool(_LATIN.search(text)) or not russian(word) or lookalike(text)


def better_latin(word: Word, read: ReadLine, option: bool | None = None) -> bool:
    """Whether PP-OCR's `read` of the suspect `word` replaces tesseract's reading; `option`: whether the word is
    (part of) a command-line option, when not told by its leading dash."""
    text = read.text.strip()
    if option is None:
        option = bool(_OPTION.match(text) and _OPTION.match(word.text))
    sure = (read.confidence >= OPTION_MEAN and read.weakest >= OPTION_WEAKEST) if option else (
        read.confidence >= SURE_MEAN and read.weakest >= SURE_WEAKEST)
    if not text or text == word.text or not sure:
        return False
    if not _PRINTABLE_ASCII.match("".join(c for c in text if c not in _QUOTES)) or not any(c.isalpha() for c in text):
        return False
    if option:  # "-vET", "--number-nonblank": capitals inside and "bl" are what options look like (not values)
        return not _SIGNATURE.search(text.partition("=")[2])
    if _SIGNATURE.search(text):
        return False
    return any(char in _LATIN_ONLY for char in text) or not russian(word)


def latin_text(word: Word, read: ReadLine) -> str | None:
    """What replaces tesseract's reading of the suspect `word` given PP-OCR's `read` of its box, or None. A word of
    parts joined by "-" or "=" is decided part by part when both readings have the same joins: a Latin root with a
    Russian ending ("mmap-нутый", "PID-ы") or an option with a Russian value ("--from-code=начальная_кодировка")
    takes PP-OCR's Latin part and keeps tesseract's Russian one."""
    if better_latin(word, read):
        return read.text.strip()
    text = read.text.strip()
    joins = _JOINS.findall(word.text)
    if not joins or _JOINS.findall(text) != joins:
        return None
    probs = read.char_probs or (read.confidence,) * len(read.text)
    start = len(read.text) - len(read.text.lstrip())
    chosen, changed = [], False
    in_option = bool(_OPTION.match(word.text) and _OPTION.match(text))  # up to its "=": the option's name
    for ours, theirs, join in zip(_JOINS.split(word.text), _JOINS.split(text), [*joins, ""], strict=True):
        part_probs = probs[start: start + len(theirs)]
        start += len(theirs) + 1
        part = ReadLine(theirs, sum(part_probs) / len(part_probs), min(part_probs), tuple(part_probs)) \
            if part_probs else ReadLine(theirs, 0.0, 0.0)
        # a part needs a Latin-only letter (or to be an option): "какой-то" read "Kakoй-To" keeps its "то"
        latin = in_option or any(char in _LATIN_ONLY for char in theirs)
        if latin and any(char.isalpha() for char in ours) and better_latin(word._replace(text=ours), part,
                                                                          option=in_option):
            chosen.append(theirs)
            changed = True
        else:
            chosen.append(ours)
        in_option = in_option and join != "="
    if not changed:
        return None
    return "".join(part + join for part, join in zip(chosen, [*joins, ""], strict=True))


def english_reading(text: str) -> bool:
    """Whether tesseract's English model's reading of a suspect may stand: plain ASCII with a letter no Cyrillic
    letter looks like, and neither the look-alike signature of Cyrillic in lower case ("mopT") nor in capitals
    ("YCJIOBHE", "IIAPAMETP", "PA3MEP": Л, П, З)."""
    return (bool(_PRINTABLE_ASCII.match(text)) and any(char in _LATIN_ONLY for char in text)
            and not _SIGNATURE.search(text) and not _CAPITALS_SIGNATURE.search(text))


def option_letters(text: str, english: str, confidence: float) -> bool:
    """Whether tesseract's English reading `english` (its confidence 0-1) of the option `text` ("-1", "-1,", "[-1]")
    stands: the same characters but for digits read as the Latin letters they look like ("-l"). tesseract's
    Cyrillic model has no Latin "l" to choose, so its "1" there is no evidence; the English model has both."""
    if len(english) != len(text) or english == text or confidence < OPTION_LETTER_SURE or not _OPTION.match(text):
        return False
    return all(ours == theirs or theirs in _DIGIT_LOOKALIKES.get(ours, "") for ours, theirs in zip(text, english))


def split_read(read: ReadLine) -> list[ReadLine]:
    """PP-OCR's reading of a strip cut at its spaces: one ReadLine per word, each with its own characters'
    confidence (mean and weakest)."""
    words: list[ReadLine] = []
    chars: list[str] = []
    probs: list[float] = []

    def close() -> None:
        if chars:
            words.append(ReadLine("".join(chars), sum(probs) / len(probs), min(probs), tuple(probs)))
            chars.clear()
            probs.clear()

    char_probs = read.char_probs or (read.confidence,) * len(read.text)
    for char, prob in zip(read.text, char_probs, strict=False):
        if char.isspace():
            close()
        else:
            chars.append(char)
            probs.append(prob)
    close()
    return words


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


def _union(boxes: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def mend_latin_words(lines: Sequence[tuple[TextLine, list[Word]]],
                     read_boxes: Callable[[list[tuple[float, float, float, float]]], list[ReadLine]],
                     read_latin: Callable[[tuple[float, float, float, float]], tuple[str, float]] | None = None,
                     ) -> list[TextLine]:
    """`lines` (tesseract's, with their words) with each suspect word PP-OCR reads surely as Latin replaced;
    `read_boxes` reads pixel boxes of the page with PP-OCR. Neighbouring suspects are read as one strip. A suspect
    PP-OCR was not sure of and that holds no Russian word is given to `read_latin` (tesseract's English model on
    the word's box: text, confidence 0-1), whose reading is kept when surer than the Cyrillic one."""
    runs: list[tuple[int, list[int]]] = []  # (line, word indices) of each run of neighbouring suspects
    for k, (_, words) in enumerate(lines):
        for j, word in enumerate(words):
            if not suspect(word):
                continue
            if runs and runs[-1][0] == k and runs[-1][1][-1] == j - 1:
                runs[-1][1].append(j)
            else:
                runs.append((k, [j]))
    if not runs:
        return [line for line, _ in lines]
    texts = [[w.text for w in words] for _, words in lines]
    reads = read_boxes([_union([lines[k][1][j].bbox for j in run]) for k, run in runs])
    alone: list[tuple[int, int]] = []
    for (k, run), read in zip(runs, reads, strict=True):
        parts = split_read(read) if len(run) > 1 else [read]
        if len(parts) != len(run):  # PP-OCR split the strip otherwise ("--а ог" read "--author")
            words = [lines[k][1][j] for j in run]
            whole = Word(" ".join(w.text for w in words), _union([w.bbox for w in words]),
                         min(w.confidence for w in words))
            if not any(russian(w) for w in words) and " " not in read.text.strip() and better_latin(whole, read):
                texts[k][run[0]] = read.text.strip()
                for j in run[1:]:
                    texts[k][j] = ""
            else:  # each word on its own
                alone.extend((k, j) for j in run)
            continue
        for j, part in zip(run, parts, strict=True):
            texts[k][j] = latin_text(lines[k][1][j], part) or texts[k][j]
    if alone:
        for (k, j), read in zip(alone, read_boxes([lines[k][1][j].bbox for k, j in alone]), strict=True):
            texts[k][j] = latin_text(lines[k][1][j], read) or texts[k][j]
    if read_latin is not None:
        for k, run in runs:
            for j in run:
                word = lines[k][1][j]
                if texts[k][j] != word.text or russian(word) or not any(c.isalpha() for c in word.text):
                    continue
                text, confidence = read_latin(word.bbox)
                if confidence > word.confidence and english_reading(text):
                    texts[k][j] = text
        for k, run in runs:  # an option with a digit ("-1"): is it a letter the Cyrillic model cannot read ("-l")?
            for j in run:
                text = texts[k][j]
                if _OPTION.match(text) and any(char in _DIGIT_LOOKALIKES for char in text):
                    english, confidence = read_latin(lines[k][1][j].bbox)
                    if option_letters(text, english, confidence):
                        texts[k][j] = english
    for k, run in runs:  # "-c" or "-C": the line's heights tell
        for j in run:
            texts[k][j] = option_case(texts[k][j], lines[k][1][j], lines[k][1])
    return [replace(line, text=" ".join(w for w in words if w)) for (line, _), words in zip(lines, texts, strict=True)]
