"""Document text as Markdown text: what a page says is shown, never run, by whatever renders our Markdown.

Our own Markdown (headings' `#`, list dashes, pipe tables, `![figure](...)` images, `$$` around formulas, table
HTML built by tables.py or the VLM's OTSL converter, both escaping their cells) is written by the assembler;
every piece of text that comes from the document (text layer, OCR, the VLM's reading of a region) goes through
`escape_text` before it is put in between. The rule is CommonMark's own, so any CommonMark or GFM renderer (a
wiki, GitHub, marked in /ui) shows the characters and nothing else:

- `<` and `>` become `&lt;` / `&gt;` (§6.6 raw HTML needs a literal `<`; §6.5 autolinks too), so no tag,
  comment or `<javascript:...>` autolink survives;
- `&` becomes `&amp;` where it would start an entity reference (§6.2: `&lt;` in the text stays `&lt;` to the
  reader); any other `&` is literal in CommonMark already and stays as it is (AT&T);
- `]` is backslash-escaped (§2.4) where it would close link text: before `(` (inline links and images), `[`
  (reference links) and `:` (link reference definitions). Without an unescaped `](`, `][` or `]:` no link or
  image can form, so `[x](javascript:...)` is text; `[1]` and other brackets stay as they are.

Emphasis, `#` at a line start and the like are left alone: they change how text looks, not what it does. This is
done with the standard library (html.escape's table for `<` `>`, one regular expression each); the rules are
small enough that a Markdown library would add a dependency, not safety. The JSON blocks' `text` stays the raw
text: it is data, not markup; their `html` (tables) is escaped where it is built.
"""

from __future__ import annotations

import re

_ENTITY_START = re.compile(r"&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};)")
_LINK_CLOSE = re.compile(r"\](?=[(\[:])")


def escape_text(text: str) -> str:
    """`text` from a document, made literal in Markdown and HTML (see the module docstring for the rules)."""
    if not text:
        return text
    text = _ENTITY_START.sub("&amp;", text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return _LINK_CLOSE.sub(r"\\]", text)
