"""Pages per second through the PagePool on born-digital pages, for `auto` and `text` mode.

    python -m bench.throughput                       # auto: 64 pages, text: 1000 pages
    python -m bench.throughput --quick               # auto: 4 pages, text: 40 pages
    python -m bench.throughput --modes text --text-pages 5000 --docs 8
    python -m bench.throughput --modes text --text-pages 400 --in-process-pages 200

Each mode also runs `--in-process-pages` pages in this process on one core (no pool, no IPC) and reports
`pool_vs_in_process`, the pool's rate over that one: the honest figure on a shared machine.

`floor` is what no pipeline can go under, measured on the same pages in this process at one thread: `text`, pdfium
loading each page and its text (`get_textpage` + `get_text_range`, nothing of ours); `auto`, the layout model's
ONNX session on one page (the same 800x608 tensor for every page). `max_pages_per_s` = cores / that cost: the
rate all cores would reach doing nothing else. A target above it cannot be met on this machine with this engine.

The input is built from the dense born-digital eval pages, repeated into one N-page PDF per mode (`--docs K`
splits the pages over K concurrent documents, the way several API clients would). The pool is warmed up first and
its warm-up is reported, not counted. Targets (printed, not asserted): auto >= 8 pages/s and text >= 500 pages/s
on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DENSE_PAGES,
    PDF_DIR,
    bench_settings,
    convert,
    emit,
    page_service_s,
    progress,
    running_pool,
    summary,
)

TARGETS_PAGES_PER_S = {"auto": 8.0, "text": 500.0}


def build_pdf(out: Path, n_pages: int, sources: list[Path]) -> Path:
    """An `n_pages` PDF cycling through the first page of each source (atomic write)."""
    import pypdfium2 as pdfium

    target = pdfium.PdfDocument.new()
    opened = [pdfium.PdfDocument(str(s)) for s in sources]
    try:
        for i in range(n_pages):
            target.import_pages(opened[i % len(opened)], [0])
        partial = out.with_suffix(".part")
        target.save(str(partial))
        partial.replace(out)
    finally:
        for document in opened:
            document.close()
        target.close()
    return out


async def measure(pool: Any, mode: str, paths: list[Path], pages_per_doc: list[int]) -> dict[str, Any]:
    started = time.perf_counter()
    documents = await asyncio.gather(
        *(convert(pool, path, mode, list(range(n))) for path, n in zip(paths, pages_per_doc, strict=True))
    )
    wall = time.perf_counter() - started
    pages = [page for document in documents for page in document.pages]
    sources = sorted({page.source for page in pages})
    stage_totals: dict[str, float] = {}
    for document in documents:
        for stage, seconds in (document.timings or {}).items():
            stage_totals[stage] = stage_totals.get(stage, 0.0) + seconds
    service = [s for s in (page_service_s(p) for p in pages) if s is not None]
    rate = len(pages) / wall if wall else None
    return {
        "pages": len(pages),
        "documents": len(documents),
        "wall_s": round(wall, 3),
        "pages_per_s": round(rate, 2) if rate else None,
        "target_pages_per_s": TARGETS_PAGES_PER_S.get(mode),
        "target_met": rate >= TARGETS_PAGES_PER_S[mode] if rate and mode in TARGETS_PAGES_PER_S else None,
        "page_sources": sources,
        "page_service_s": summary(service),
        "stage_seconds_total": {k: round(v, 3) for k, v in sorted(stage_totals.items())},
    }


def in_process_rate(path: Path, mode: str, n_pages: int, settings: Any) -> dict[str, Any]:
    """The same pages converted in this process on one core, no pool: what a worker could do without IPC.
    "pool vs in-process" (pool pages/s over this) is the honest figure on a shared machine, since both are
    measured in the same run under the same load."""
    from app.pipeline import page as page_mod
    from app.runtime.document import merge_pages
    from app.pipeline.options import ConvertOptions

    page_mod.init_worker(settings, preload=mode != "text")
    options = ConvertOptions(mode=mode)
    started = time.perf_counter()
    try:
        pages = [page_mod.run_task(page_mod.PageTask(pdf_path=str(path), page_index=i, options=options))
                 for i in range(n_pages)]
        merge_pages(pages, n_pages)
        wall = time.perf_counter() - started
    finally:
        page_mod._state().documents.close()
    return {"pages": n_pages, "wall_s": round(wall, 3), "pages_per_s": round(n_pages / wall, 2) if wall else None}


def floor_s_per_page(path: Path, mode: str, n_pages: int) -> float:
    """Seconds per page of the bare engine a mode cannot do without, at one thread (see the module docstring)."""
    import pypdfium2 as pdfium

    if mode == "text":
        document = pdfium.PdfDocument(str(path))
        try:
            started = time.perf_counter()
            for index in range(n_pages):
                page = document[index]
                textpage = page.get_textpage()
                textpage.get_text_range()
                textpage.close()
                page.close()
            return (time.perf_counter() - started) / n_pages
        finally:
            document.close()
    import numpy as np
    import onnxruntime as ort

    from app.pipeline.layout.cdla import cdla_model_path

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(cdla_model_path()), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, 800, 608), dtype=np.float32)}
    session.run(None, feed)
    runs = max(3, min(n_pages, 10))
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, feed)
    return (time.perf_counter() - started) / runs


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    sizes = {"auto": 4 if args.quick else args.auto_pages, "text": 40 if args.quick else args.text_pages}
    if args.limit:
        sizes = {mode: min(n, args.limit) for mode, n in sizes.items()}
    sources = [PDF_DIR / name for name in DENSE_PAGES]
    doc: dict[str, Any] = {
        "benchmark": "throughput",
        "workers": settings.workers,
        "threads_per_worker": settings.threads_per_worker,
        "source_pages": [s.name for s in sources],
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        async with running_pool(settings) as (pool, warmup_s):
            doc["warmup_s"] = round(warmup_s, 3)
            for mode in args.modes:
                total = sizes.get(mode, args.auto_pages)
                n_docs = max(1, min(args.docs, total))
                per_doc = [total // n_docs + (1 if i < total % n_docs else 0) for i in range(n_docs)]
                paths = []
                for i, n in enumerate(per_doc):
                    # Documents differ in their first page so no cache can serve one from another.
                    rotated = sources[i % len(sources):] + sources[: i % len(sources)]
                    paths.append(build_pdf(Path(tmp) / f"{mode}-{i}.pdf", n, rotated))
                progress("mode %s: %d pages in %d document(s)", mode, total, n_docs)
                result = await measure(pool, mode, paths, per_doc)
                if args.in_process_pages:
                    n = min(args.in_process_pages, per_doc[0])
                    single = await asyncio.to_thread(in_process_rate, paths[0], mode, n, settings)
                    result["in_process_single_core"] = single
                    if single["pages_per_s"] and result["pages_per_s"]:
                        result["pool_vs_in_process"] = round(result["pages_per_s"] / single["pages_per_s"], 2)
                floor = await asyncio.to_thread(floor_s_per_page, paths[0], mode, min(per_doc[0], 200))
                cores = os.cpu_count() or 1
                result["floor"] = {"s_per_page_one_thread": round(floor, 5), "cores": cores,
                                   "max_pages_per_s": round(cores / floor, 1),
                                   "target_pages_per_s": TARGETS_PAGES_PER_S.get(mode)}
                doc["modes"][mode] = result
                progress("mode %s: %.2f pages/s (pool vs in-process: %s)", mode, result["pages_per_s"] or 0.0,
                         result.get("pool_vs_in_process"))
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                        default=["auto", "text"])
    parser.add_argument("--auto-pages", type=int, default=64)
    parser.add_argument("--text-pages", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=1, help="split the pages over this many concurrent documents")
    parser.add_argument("--limit", type=int, default=0, help="at most N pages per mode")
    parser.add_argument("--quick", action="store_true", help="auto: 4 pages, text: 40 pages")
    parser.add_argument("--in-process-pages", type=int, default=100,
                        help="also convert this many pages in-process on one core, for the pool-vs-in-process "
                             "ratio (0: skip)")
    parser.add_argument("--workers", type=int, help="page workers (default: settings, one per core)")
    parser.add_argument("--threads", type=int, help="ONNX threads per worker (default: settings)")
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(asyncio.run(main_async(build_parser().parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
