"""What every bench script shares: where the eval data lives, settings, a pool-backed converter, JSON output.

Scripts print one JSON document on stdout and progress on stderr, so `python -m bench.x > result.json` works.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

EVAL_DIR = Path(os.environ.get("BENCH_EVAL_DIR", Path(__file__).resolve().parents[2] / "shared" / "eval"
                               / "olmocr-bench-sample"))
PDF_DIR = EVAL_DIR / "pdfs"
DATASET = EVAL_DIR / "dataset.jsonl"

# Born-digital eval pages with a real (not OCR-overlay) text layer and dense typesetting: the reference text for
# the scan benchmark and the input of the throughput benchmark. Chosen by inspecting the sample (chars >= 1000,
# glyphs drawn as text, not an invisible layer over a scan).
DENSE_PAGES = (
    "multi_column_miss.pdf",
    "headers_footers/ff0f0b22c55d8b90dd77d153f48e144fc9db_pg2.pdf",
    "discoverworld_crazy_table4.pdf",
    "olmo2-pg4.pdf",
    "earnings.pdf",
    "math_2503_04086.pdf",
    "openstax_caculus_pg_273.pdf",
    "mathfuncs.pdf",
)


def tesseract_text(png: Path, dpi: int, threads: int, lang: str = "eng") -> str:
    """The peer: `tesseract PNG stdout --dpi DPI -l LANG` with `threads` OpenMP threads; its text."""
    import subprocess

    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
    done = subprocess.run(["tesseract", str(png), "stdout", "--dpi", str(dpi), "-l", lang], env=env,
                          capture_output=True, text=True, check=True, timeout=300)
    return done.stdout


def progress(message: str, *args: object) -> None:
    """One progress line on stderr (stdout is reserved for the JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] " + (message % args if args else message), file=sys.stderr,
          flush=True)


def emit(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def bench_settings(**overrides: Any):
    """Settings from the environment (so WORKERS, THREADS_PER_WORKER... apply) plus the script's overrides."""
    from app.settings import load_settings

    overrides = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(**overrides)


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "median": None, "mean": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"n": len(values), "median": round(statistics.median(ordered), 4),
            "mean": round(statistics.fmean(ordered), 4), "p90": round(p90, 4), "max": round(ordered[-1], 4)}


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def page_service_s(page: Any) -> float | None:
    """Worker-side seconds for one page from its stage timings (`total` when the pipeline reports one)."""
    timings = getattr(page, "timings", None) or {}
    if "total" in timings:
        return float(timings["total"])
    return float(sum(timings.values())) if timings else None


def plain_text_of(page: Any, *, include_furniture: bool = True) -> str:
    """A page's text block by block in reading order (tables as their cell text), furniture included by default:
    the reference text layer of a page contains its running headers too."""
    from bench.facts import parse_html_tables

    parts = []
    for block in sorted(page.blocks, key=lambda b: b.order):
        if not include_furniture and block.type in ("header", "footer", "page_number"):
            continue
        text = block.text
        if not text and block.html:
            rows = []
            for table in parse_html_tables(block.html):
                for r, row in enumerate(table.texts):
                    seen, cells = set(), []
                    for c, cell in enumerate(row):
                        if table.ids[r][c] not in seen and cell:
                            seen.add(table.ids[r][c])
                            cells.append(cell)
                    rows.append(" ".join(cells))
            text = "\n".join(rows)
        if text:
            parts.append(text)
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def running_pool(settings: Any) -> AsyncIterator[tuple[Any, float]]:
    """A started and warmed-up PagePool; yields (pool, warmup seconds) and stops it on the way out."""
    from app.runtime.pool import PagePool

    pool = PagePool(settings)
    started = time.perf_counter()
    pool.start()
    try:
        warmup_s = await pool.warmup()
        progress("pool up: %s workers x %s threads, warm-up %.1fs (%.1fs wall)", settings.workers,
                 settings.threads_per_worker, warmup_s, time.perf_counter() - started)
        yield pool, warmup_s
    finally:
        await pool.stop(grace_s=10.0)


async def convert(pool: Any, path: Path, mode: str, page_indices: list[int] | None = None, *, vl: Any = None,
                  dpi: int | None = None, lang: str = "auto") -> Any:
    """One document through the pool the way the API runs it (`convert_document` admits its own pages)."""
    from app.runtime.document import convert_document
    from app.pipeline.options import ConvertOptions

    pages = None if page_indices is None else ",".join(str(i + 1) for i in page_indices)
    options = ConvertOptions(mode=mode, pages=pages, lang=lang, **({"dpi": dpi} if dpi else {}))
    return await convert_document(pool, path, options, page_indices=page_indices, vl=vl)
