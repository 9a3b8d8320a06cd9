"""Languages: Russian pages read with no language given, against tesseract `rus+eng`, in one run.

    python -m bench.languages --workers 2 --threads 1            # the issue's comparison (2 processes x 1 thread)
    python -m bench.languages --pages 3 --no-english              # quick

Sets (bench/russian_pages.py typesets Debian's Russian manual pages; bench.scan_ocr rasterises and wears them):
- `ru_clean`, `ru_worn`: 200 DPI scans; ours through the PagePool with `lang` unset (auto: the page's script
  decides), tesseract `-l rus+eng` as separate processes, before and after ours (load from others on a shared machine
  weighs on both alike);
- `ru_born_digital`: the PDFs themselves in `auto` mode (text layer): F1 of the Markdown's words (page furniture
  left out, as a reader sees it) against the body of the page, and the share of body words missing (`words_lost`);
- `en_clean`, `en_worn` (unless --no-english): the English dense eval pages scanned, ours in `auto` against ours
  with `lang=en` (PP-OCR alone: the path every page took before languages existed), same pool, same run.
Prints one JSON document; targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import DENSE_PAGES, PDF_DIR, bench_settings, convert, emit, plain_text_of, progress, running_pool
from bench.russian_pages import build as build_russian
from bench.scan_ocr import (
    SEED,
    contender_report,
    merge_passes,
    rasterise,
    run_ours,
    run_tesseract,
    score,
    words_of,
)

TARGETS = {
    "ru_clean": {"word_f1": 0.97, "pages_per_s_vs_tesseract": 1.0},
    "ru_worn": {"word_f1": ">= tesseract rus+eng", "pages_per_s_vs_tesseract": 1.0},
    "ru_born_digital": {"word_f1": 0.99},
    "en": {"word_f1_and_pages_per_s_vs_lang_en": ">= 0.98"},
}
TESSERACT_LANGS = "rus+eng"


def body_reference(reference: str) -> str:
    """A typeset page's text without its running header and folio (bench/russian_pages.py puts them first)."""
    lines = reference.splitlines()
    return "\n".join(lines[2:])


def words_lost(markdown_text: str, reference: str) -> float:
    """Share of the reference's words (with multiplicity) that the output does not have."""
    ref, got = Counter(words_of(reference.lower())), Counter(words_of(markdown_text.lower()))
    return round(sum((ref - got).values()) / max(1, sum(ref.values())), 4)


async def born_digital(pdfs: list[Path], settings: Any) -> dict[str, Any]:
    async with running_pool(settings) as (pool, _):
        started = time.perf_counter()
        documents = await asyncio.gather(*(convert(pool, pdf, "auto", [0]) for pdf in pdfs))
        wall = time.perf_counter() - started
    per_page = {}
    for pdf, document in zip(pdfs, documents, strict=True):
        import pypdfium2 as pdfium

        source = pdfium.PdfDocument(str(pdf))
        try:
            reference = body_reference(source[0].get_textpage().get_text_range())
        finally:
            source.close()
        text = plain_text_of(document.pages[0], include_furniture=False)
        per_page[pdf.stem] = {"word_f1": score(text, reference)["words"]["f1"], "words_lost": words_lost(text, reference),
                              "furniture": [b.text for b in document.pages[0].blocks
                                            if b.type in ("header", "footer", "page_number")]}
    pages = list(per_page.values())
    return {"pages": len(pages), "pages_per_s": round(len(pages) / wall, 3),
            "word_f1": round(sum(p["word_f1"] for p in pages) / len(pages), 4),
            "words_lost": round(sum(p["words_lost"] for p in pages) / len(pages), 4), "per_page": per_page}


def _pages_per_s(reports: list[dict[str, Any]], name: str) -> float:
    """Pages/s of several runs of one set taken together."""
    pages = sum(r[name]["pages_per_s"] * r[name]["wall_s"] for r in reports)
    return pages / sum(r[name]["wall_s"] for r in reports)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def main_sync(args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    doc: dict[str, Any] = {"benchmark": "languages", "dpi": args.dpi, "seed": args.seed, "workers": settings.workers,
                           "threads_per_worker": settings.threads_per_worker, "ocr_quality": settings.ocr_quality,
                           "tesseract_langs": TESSERACT_LANGS, "targets": TARGETS,
                           "note": "ratios come from one run; the machine may be shared, so compare ratios"}
    with tempfile.TemporaryDirectory(prefix="bench-languages-") as tmp:
        root = Path(tmp)
        progress("typesetting %d Russian manual pages", args.pages)
        pdfs = build_russian(root / "ru-pdf", args.pages)
        progress("rasterising at %d DPI, worn with seed %d", args.dpi, args.seed)
        scans = rasterise(pdfs, root, args.dpi, args.seed)
        ru_sets = {"ru_clean": scans["clean"], "ru_worn": scans["worn"]}
        passes = []

        def tesseract_pass() -> None:
            progress("tesseract -l %s: %d process(es), OMP_THREAD_LIMIT=%d", TESSERACT_LANGS, settings.workers,
                     settings.threads_per_worker)
            passes.append({name: run_tesseract(pages, settings.workers, settings.threads_per_worker, args.dpi,
                                               TESSERACT_LANGS) for name, pages in ru_sets.items()})

        tesseract_pass()
        progress("ours: lang unset (auto)")
        ours = asyncio.run(run_ours(ru_sets, settings, args.dpi))
        tesseract_pass()
        doc["ours"] = {name: contender_report(ours[name], pages, args.verbose) for name, pages in ru_sets.items()}
        doc["tesseract"] = {name: contender_report(merge_passes(passes[0][name], passes[1][name]), pages, args.verbose)
                            for name, pages in ru_sets.items()}
        doc["ratios"] = {name: {
            "pages_per_s_ours_over_tesseract": _ratio(doc["ours"][name]["pages_per_s"],
                                                      doc["tesseract"][name]["pages_per_s"]),
            "cpu_speed_ours_over_tesseract": _ratio(doc["tesseract"][name]["cpu_s_per_page"],
                                                    doc["ours"][name]["cpu_s_per_page"]),
            "word_f1_ours_minus_tesseract": round(doc["ours"][name]["word_f1"] - doc["tesseract"][name]["word_f1"], 4),
        } for name in ru_sets}
        progress("ours: Russian born-digital pages in auto mode")
        doc["ru_born_digital"] = asyncio.run(born_digital(pdfs, settings))
        if not args.no_english:
            names = list(DENSE_PAGES)[: args.english_pages]
            (root / "en").mkdir()
            english = rasterise([PDF_DIR / n for n in names], root / "en", args.dpi, args.seed)
            en_sets = {"en_clean": english["clean"], "en_worn": english["worn"]}
            runs = {}
            for lang in ("en", "auto", "en"):  # lang=en on both sides of auto: drift on a shared machine shows
                progress("ours on English scans: lang=%s", lang)
                raw = asyncio.run(run_ours(en_sets, settings, args.dpi, lang=lang))
                report = {name: contender_report(raw[name], pages, False) for name, pages in en_sets.items()}
                runs.setdefault(lang, []).append(report)
            doc["english"] = {"auto": runs["auto"][0], "lang_en": runs["en"]}
            doc["ratios"]["english"] = {name: {
                "pages_per_s_auto_over_en": _ratio(runs["auto"][0][name]["pages_per_s"], _pages_per_s(runs["en"], name)),
                "cpu_speed_auto_over_en": _ratio(sum(r[name]["cpu_s_per_page"] for r in runs["en"]) / len(runs["en"]),
                                                 runs["auto"][0][name]["cpu_s_per_page"]),
                "word_f1_auto_minus_en": round(runs["auto"][0][name]["word_f1"] - runs["en"][0][name]["word_f1"], 4),
            } for name in en_sets}
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.languages", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8, help="Russian manual pages")
    parser.add_argument("--english-pages", type=int, default=len(DENSE_PAGES))
    parser.add_argument("--no-english", action="store_true")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="per-page scores")
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(main_sync(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
