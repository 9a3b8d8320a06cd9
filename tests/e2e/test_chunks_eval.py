"""Retrieval chunks on the real pipeline's output for every olmOCR-Bench sample and tables-dev PDF: no chunk over
max_tokens, token counts by the named tokenizer, every word of the body in some chunk, tables split by rows under
their header, captions with their table, the title path above each chunk."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest

from app.chunking.chunker import ChunkOptions, Chunk, chunk_document
from app.chunking.tokens import TOKENIZER_NAME, count_tokens
from app.runtime.document import convert_file_sync
from app.pipeline.options import ConvertOptions
from app.runtime.pool import PagePool
from app.pipeline.result import FURNITURE, DocumentResult
from tests.conftest import EVAL_DIR, SHARED

TABLES_DIR = SHARED / "eval" / "tables-dev"
PDFS = sorted(EVAL_DIR.glob("pdfs/**/*.pdf")) + sorted(TABLES_DIR.glob("*.pdf"))

pytestmark = pytest.mark.skipif(not PDFS, reason=f"eval PDFs not found under {SHARED / 'eval'}")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, DocumentResult]:
    from app.settings import Settings

    settings = Settings(_env_file=None, output_dir=tmp_path_factory.mktemp("out"), workers=1)  # type: ignore[call-arg]
    pool = PagePool(settings)  # one pool: the layout and OCR models load once for every file
    pool.start()
    try:
        return {str(pdf.relative_to(SHARED / "eval")): convert_file_sync(pdf, ConvertOptions(mode="auto", images="none"),
                                                                        settings, pool=pool)
                for pdf in PDFS}
    finally:
        asyncio.run(pool.stop(grace_s=5))


def _words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text))


def _block_source(block) -> str:
    lines = block.text.strip().splitlines()
    if block.type == "table" and block.html and not (len(lines) >= 2 and lines[0].lstrip().startswith("|")):
        return block.html
    return block.text


def _check_rules(result: DocumentResult, chunks: list[Chunk], max_tokens: int) -> list[str]:
    problems = []
    for number, chunk in enumerate(chunks):
        if chunk.tokens > max_tokens:
            problems.append(f"chunk {number}: {chunk.tokens} tokens > {max_tokens}")
        if chunk.tokens != count_tokens(chunk.text):
            problems.append(f"chunk {number}: tokens {chunk.tokens} is not the text's count")
        if chunk.pages != sorted({ref.page for ref in chunk.blocks}):
            problems.append(f"chunk {number}: pages {chunk.pages} do not match its blocks")
    # Coverage: the chunks that name a block hold every word of it (in their text or their heading path).
    holding: dict[tuple[int, int], Counter[str]] = {}
    for chunk in chunks:
        words = _words(chunk.text + " " + " ".join(chunk.headings))
        for ref in chunk.blocks:
            holding[(ref.page, ref.index)] = holding.get((ref.page, ref.index), Counter()) + words
    headings_anywhere = Counter()
    for chunk in chunks:
        headings_anywhere |= _words(" ".join(chunk.headings))
    for page in result.pages:
        for index, block in enumerate(page.blocks):
            if block.type in FURNITURE or not _words(_block_source(block)):
                continue
            have = holding.get((page.page, index), Counter())
            if block.type == "title":
                have = have | headings_anywhere
            missing = _words(_block_source(block)) - have
            if missing:
                problems.append(f"page {page.page} block {index} ({block.type}) lost {sorted(missing)[:5]}")
    return problems


@pytest.mark.parametrize("method", ["hierarchical", "hybrid"])
@pytest.mark.parametrize("max_tokens", [64, 512])
def test_chunks_fit_count_and_cover_every_eval_document(results, method, max_tokens):
    problems = {}
    for name, result in results.items():
        chunk_set = chunk_document(result, ChunkOptions(method, max_tokens))
        assert chunk_set.tokenizer == TOKENIZER_NAME and chunk_set.max_tokens == max_tokens
        if found := _check_rules(result, chunk_set.chunks, max_tokens):
            problems[name] = found[:3]
    assert problems == {}


def test_hybrid_makes_fewer_larger_chunks_than_hierarchical(results):
    for name, result in results.items():
        hierarchical = chunk_document(result, ChunkOptions("hierarchical", 512)).chunks
        hybrid = chunk_document(result, ChunkOptions("hybrid", 512)).chunks
        assert len(hybrid) <= len(hierarchical), name
    total = {m: sum(len(chunk_document(r, ChunkOptions(m, 512)).chunks) for r in results.values())
             for m in ("hierarchical", "hybrid")}
    assert total["hybrid"] < total["hierarchical"] * 0.8


def test_a_split_table_repeats_its_header_row_in_every_piece(results):
    split_tables = 0
    for name, result in results.items():
        chunks = chunk_document(result, ChunkOptions("hierarchical", 128)).chunks
        for page in result.pages:
            for index, block in enumerate(page.blocks):
                lines = block.text.splitlines()
                if block.type != "table" or len(lines) < 3 or not lines[0].startswith("|"):
                    continue
                pieces = [c for c in chunks if any(r.page == page.page and r.index == index for r in c.blocks)]
                if len(pieces) < 2:
                    continue
                header = "\n".join(lines[:2])
                if count_tokens(header) + max(count_tokens(row) for row in lines[2:]) + 2 > 128:
                    continue  # a header too big to repeat beside the longest row: read as text instead
                split_tables += 1
                for piece in pieces:
                    if piece.text.count("|") > 2:  # a caption of its own has no rows
                        assert header in piece.text, (name, piece.text[:200])
    assert split_tables >= 5  # tables-dev has long tables: the rule was exercised


def test_a_table_caption_stays_in_the_chunk_of_its_table(results):
    result = results["olmocr-bench-sample/pdfs/olmo2-pg4.pdf"]
    chunks = chunk_document(result, ChunkOptions("hierarchical", 2048)).chunks
    with_caption = [c for c in chunks if "Table 1 Composition of the pretraining data" in c.text]
    assert len(with_caption) == 1
    assert {ref.type for ref in with_caption[0].blocks} >= {"table"}
    assert "| Source | Type | Tokens |" in with_caption[0].text


def test_each_chunk_carries_the_title_path_above_it(results):
    result = results["olmocr-bench-sample/pdfs/olmo2-pg4.pdf"]
    chunks = chunk_document(result, ChunkOptions("hierarchical", 512)).chunks
    after = [c for c in chunks if c.text.startswith("After the initial pretraining stage")]
    assert after and after[0].headings[-1] == "2.1.2 Mid-training data: Dolmino Mix 1124"
    assert after[0].blocks[0].bbox[2] > after[0].blocks[0].bbox[0]  # a real box, in PDF points
