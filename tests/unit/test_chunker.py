"""app/chunking on hand-made documents: the tokenizer is the real cl100k_base, titles, captions, tables in pipe and
HTML form, oversize text, and the option checks."""

from __future__ import annotations

import pytest

from app.chunking.chunker import ChunkOptions, chunk_document, parse_chunk_options
from app.chunking.tokens import count_tokens, encoding
from app.pipeline.options import OptionError
from app.pipeline.result import Block, DocumentResult, PageResult


def _doc(*blocks: Block) -> DocumentResult:
    ordered = [b.model_copy(update={"order": i}) for i, b in enumerate(blocks)]
    page = PageResult(page=1, width=600, height=800, source="text", markdown="", blocks=ordered)
    return DocumentResult(markdown="", page_count=1, pages=[page])


def _b(kind: str, text: str = "", **extra) -> Block:
    return Block(type=kind, bbox=(10, 10, 100, 20), text=text, **extra)


def test_the_tokenizer_is_openai_cl100k_base():
    # Ids every cl100k_base implementation gives: a different BPE file would not.
    assert encoding().encode("hello world") == [15339, 1917]
    assert count_tokens("<|endoftext|>") > 1  # document text, not a special token


def test_titles_become_the_heading_path_and_a_title_with_nothing_under_it_is_kept():
    doc = _doc(_b("title", "1 Intro", level=1), _b("text", "First words."), _b("title", "1.1 Detail", level=2),
               _b("text", "Second words."), _b("title", "2 Next", level=1), _b("page_number", "7"),
               _b("title", "3 Last", level=1))
    chunks = chunk_document(doc, ChunkOptions("hierarchical", 64)).chunks
    assert [(c.text, c.headings) for c in chunks] == [
        ("First words.", ["1 Intro"]), ("Second words.", ["1 Intro", "1.1 Detail"]), ("2 Next", []),
        ("3 Last", [])]
    assert all("7" not in c.text for c in chunks)  # furniture stays out, as in the Markdown


def test_a_caption_joins_its_figure_and_hybrid_merges_under_one_heading():
    doc = _doc(_b("text", "Before."), _b("figure"), _b("caption", "Figure 1: A plot."), _b("text", "After."))
    hierarchical = chunk_document(doc, ChunkOptions("hierarchical", 64)).chunks
    assert [c.text for c in hierarchical] == ["Before.", "Figure 1: A plot.", "After."]
    assert [b.type for b in hierarchical[1].blocks] == ["figure", "caption"]
    hybrid = chunk_document(doc, ChunkOptions("hybrid", 64)).chunks
    assert [c.text for c in hybrid] == ["Before.\n\nFigure 1: A plot.\n\nAfter."]
    assert [b.index for b in hybrid[0].blocks] == [0, 1, 2, 3]


def test_an_html_table_is_split_by_rows_with_its_header_row_repeated():
    rows = "".join(f"<tr><td>row {i}</td><td>value number {i}</td></tr>" for i in range(60))
    html = f"<table><tr><th>Name</th><th>Value</th></tr>{rows}</table>"
    doc = _doc(_b("table", "flattened cells", html=html))
    chunks = chunk_document(doc, ChunkOptions("hierarchical", 100)).chunks
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.tokens <= 100
        assert chunk.text.startswith("<table><tr><th>Name</th><th>Value</th></tr>") and chunk.text.endswith("</table>")
    assert sum(chunk.text.count("<td>row ") for chunk in chunks) == 60


def test_oversize_prose_is_split_without_losing_a_word():
    text = " ".join(f"Sentence {i} says something about the topic." for i in range(200))
    chunks = chunk_document(_doc(_b("text", text)), ChunkOptions("hybrid", 50)).chunks
    assert len(chunks) > 10 and all(c.tokens <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


@pytest.mark.parametrize(("method", "max_tokens", "message"), [
    ("semantic", None, "chunking: must be one of hierarchical, hybrid"),
    ("hybrid", "31", "max_tokens: must be between 32 and 8192, got 31"),
    ("hybrid", "١٢٣", "max_tokens: must be an integer"),
    (None, "100", "max_tokens: only applies with chunking"),
])
def test_bad_options_are_refused(method, max_tokens, message):
    with pytest.raises(OptionError) as exc:
        parse_chunk_options(method, max_tokens)
    assert str(exc.value).startswith(message)


def test_no_method_means_no_chunks_and_the_default_size_is_512():
    assert parse_chunk_options(None, None) is None
    assert parse_chunk_options("hybrid", None) == ChunkOptions("hybrid", 512)
