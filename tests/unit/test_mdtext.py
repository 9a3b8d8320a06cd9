"""The rule that keeps document text literal in our Markdown (app/pipeline/mdtext.py), checked by rendering it
with a CommonMark renderer that lets raw HTML through (markdown-it-py's `commonmark` preset)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from app.pipeline.mdtext import escape_text

RENDER = MarkdownIt("commonmark")  # html=True: raw HTML in the Markdown would reach the page


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>", '<img src=x onerror="alert(2)">', '<iframe src="https://e.example/"></iframe>',
    "<!-- hidden -->", "<javascript:alert(1)>", "<https://e.example>",
])
def test_html_in_document_text_renders_as_the_same_text(text):
    html = RENDER.render(escape_text(text))
    assert "<script" not in html and "<img" not in html and "<iframe" not in html and "<a " not in html
    assert RENDER.render(escape_text(text)) == RENDER.render(text.replace("&", "&amp;").replace("<", "&lt;")
                                                             .replace(">", "&gt;"))


@pytest.mark.parametrize("text", [
    "[x](javascript:alert(1))", "![p](https://e.example/t.png)", "[x][r]\n\n[r]: https://e.example",
    "[a](b) [c](d)", "[x]: https://e.example",
])
def test_link_and_image_syntax_in_document_text_stays_text(text):
    html = RENDER.render(escape_text(text))
    assert "<a " not in html and "<img" not in html, html


def test_plain_text_brackets_ampersands_and_emphasis_are_left_as_they_are():
    for text in ("AT&T and R&D", "see [1] and [2, 3]", "**bold** and _it_", "a ≤ b", "5 * 3 = 15"):
        assert escape_text(text) == text
    assert escape_text("&amp; &#60; &#x3C;") == "&amp;amp; &amp;#60; &amp;#x3C;"  # shown as typed
    assert RENDER.render(escape_text("&lt;b&gt;")) == "<p>&amp;lt;b&amp;gt;</p>\n"


def test_vl_regions_are_document_text_and_their_tables_our_own_escaped_html():
    # vl mode: the VLM's reading of a region is document text (escaped, its emphasis and math kept); its tables
    # are HTML the service builds from OTSL, every cell escaped. Nothing raw reaches the page's Markdown.
    from app.pipeline.assemble import build_page
    from app.pipeline.primitives import Region
    from app.vlm.postprocess import postprocess

    said = '<img src=x onerror="alert(1)"> **bold** and $x<y$ [go](javascript:alert(2))'
    text, _ = postprocess(said, "ocr")
    table_text, table_html = postprocess("<fcel><script>alert(3)</script><fcel>b<nl><fcel>1<fcel>2<nl>", "table")
    title, _ = postprocess("<iframe src=https://e.example></iframe> Results", "ocr")
    page = build_page(page_number=1, width=600, height=800, source="vl", lines=[], regions=[
        Region(label="title", bbox=(50, 40, 550, 60), text=title, order=0),
        Region(label="text", bbox=(50, 80, 550, 200), text=text, order=1),
        Region(label="table", bbox=(50, 220, 550, 400), text=table_text, html=table_html, order=2),
    ])
    html = RENDER.render(page.markdown)
    for tag in ("<script", "<img", "<iframe", "<a "):
        assert tag not in html, (tag, page.markdown)
    assert "**bold**" in page.markdown and page.markdown.startswith("## &lt;iframe")
    assert "<table>" in page.markdown and "&lt;script&gt;alert(3)&lt;/script&gt;" in page.markdown
    assert [b.text for b in page.blocks][1] == text  # the block keeps what the model read
