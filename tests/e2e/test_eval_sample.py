"""The real pipeline on olmOCR-Bench sample pages, checked with the benchmark's own facts (bench/facts.py).

Only facts the CPU profile is built to get right on these pages are asserted: body text and two-column reading
order of a born-digital article, and running headers/footers kept out of the Markdown. Scanned pages, math and the
harder tables are measured by `python -m bench.olmocr`, not asserted here.
"""

from __future__ import annotations

import pytest

from app.runtime.document import convert_file_sync
from app.pipeline.options import ConvertOptions
from app.runtime.pool import PagePool
from bench.facts import PageOutput, check_fact, load_facts
from tests.conftest import EVAL_DIR

DATASET = EVAL_DIR / "dataset.jsonl"
ARTICLE = "multi_column_miss.pdf"  # two-column journal page with a download banner
PLOS = "headers_footers/ff0f0b22c55d8b90dd77d153f48e144fc9db_pg2.pdf"  # running header, footer, page number

pytestmark = pytest.mark.skipif(not DATASET.exists(), reason=f"eval sample not found at {EVAL_DIR}")


def facts_for(pdf: str, *types: str) -> list[dict]:
    facts = [f for f in load_facts(DATASET) if f["pdf"] == pdf and f["type"] in types]
    assert facts, f"no {types} facts for {pdf}: the sample changed"
    return facts


def convert_page(pdf: str, mode: str, settings, pool=None) -> PageOutput:
    result = convert_file_sync(EVAL_DIR / "pdfs" / pdf, ConvertOptions(mode=mode, pages="1"), settings, pool=pool)
    assert [p.page for p in result.pages] == [1]
    return PageOutput.from_page(result.pages[0])


def failures(facts: list[dict], page: PageOutput) -> list[str]:
    return [f"{f['id']}: {v.reason}" for f in facts if not (v := check_fact(f, page)).passed]


def test_text_mode_keeps_every_body_sentence_of_a_two_column_article(make_settings):
    page = convert_page(ARTICLE, "text", make_settings(workers=1))
    assert failures(facts_for(ARTICLE, "present"), page) == []


def test_text_mode_reads_a_two_column_article_column_by_column(make_settings):
    page = convert_page(ARTICLE, "text", make_settings(workers=1))
    assert failures(facts_for(ARTICLE, "order"), page) == []


def test_text_mode_keeps_running_headers_footers_and_page_numbers_out_of_the_markdown(make_settings):
    settings = make_settings(workers=1)
    assert failures(facts_for(PLOS, "absent"), convert_page(PLOS, "text", settings)) == []
    assert failures(facts_for(ARTICLE, "absent"), convert_page(ARTICLE, "text", settings)) == []


def test_auto_mode_with_layout_model_drops_furniture_and_keeps_column_order(make_settings):
    settings = make_settings(workers=1)
    pool = PagePool(settings)  # one pool, so the layout model loads once for both pages
    pool.start()
    try:
        plos = convert_page(PLOS, "auto", settings, pool)
        article = convert_page(ARTICLE, "auto", settings, pool)
    finally:
        pool.close(grace_s=0)
    assert plos.markdown.strip() and article.markdown.strip()
    assert failures(facts_for(PLOS, "absent"), plos) == []
    assert failures(facts_for(ARTICLE, "order", "absent"), article) == []
