"""Markdown heading levels of the titles the VLM read, as the official PaddleOCR-VL pipeline writes them.

PaddleX 3.7.2 (`inference/common/result/converter/markdown_format_funcs.py`, `build_handle_funcs_dict`): a
`doc_title` is `# `; a `paragraph_title` goes through `format_title`, which recognises a leading numbering
(`1`, `2.3.`, `(4)`, `IV `, `三、`...), writes it apart from the words, and puts the title one level deeper per
dot: "1 Scope" is `##`, "2.3 Method" is `###`. Upstream counts every dot left in the title; we count the dots of
the numbering only, so a title such as "Results vs. baseline" is not pushed a level down by its abbreviation
(a numbered title gets the same level either way).
"""

from __future__ import annotations

import re

# Upstream's numbering alternatives: 1 / 1.2 / 1.2. / 1、, (3) / （三）, 三、 / 三., I. / IV followed by a space.
_CN_DIGITS = "一二三四五六七八九十百千万亿零壹贰叁肆伍陆柒捌玖拾"
_NUMBERING = re.compile(
    r"^\s*("
    r"[1-9][0-9]*(?:\.[1-9][0-9]*)*[.、]?"
    rf"|[(（](?:[1-9][0-9]*|[{_CN_DIGITS}]+)[)）]"
    rf"|[{_CN_DIGITS}]+[、.]?"
    r"|(?:I|II|III|IV|V|VI|VII|VIII|IX|X)(?:\.|\s)"
    r")(\s*)(.*)$",
    re.DOTALL,
)
DOC_TITLE_KIND = "doc_title"
MAX_LEVEL = 6  # Markdown has six


def heading(kind: str | None, text: str) -> tuple[int, str]:
    """The heading level and Markdown line of a title region the VLM read (`kind`: the layout model's label)."""
    text = " ".join(text.split())  # upstream collapses the soft line breaks of a wrapped title
    if kind == DOC_TITLE_KIND:
        return 1, f"# {text}"
    match = _NUMBERING.match(text)
    if match and match.group(3):
        numbering = match.group(1).strip()
        text = f"{numbering} {match.group(3).lstrip()}"
        level = min(MAX_LEVEL, 2 + numbering.rstrip(".").count("."))
    else:
        level = 2
    text = text.rstrip(".") or text
    return level, f"{'#' * level} {text}"
