"""What figure export costs: pages/s on a figure-heavy document with `images=refer` against `images=none`.

    python -m bench.image_export                 # 16 pages (every page one large figure), auto mode
    python -m bench.image_export --quick         # 4 pages
    python -m bench.image_export --mode ocr --pages 8

The same document runs through one warmed-up pool with each setting, alternating (none, refer, none, refer...)
for `--rounds` rounds so that drift on a shared machine hits both alike; the refer runs include the parent's
`finalize` (budget, placement) and the crops' bytes on disk. Reported: pages/s each way, `refer_vs_none` (the
ratio, 1.0 = free), the worker-side `images` stage per page, and the crops written (count, bytes, PNG/JPEG
split). Target (printed, not asserted): refer costs at most 10 % of the pages/s of none in `auto` mode.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_settings, emit, progress, running_pool, summary

TARGET_RATIO = 0.9


async def _one(pool: Any, pdf: Path, mode: str, images: str, crops: Path, settings: Any) -> tuple[float, Any]:
    from app.runtime.document import convert_document
    from app.pipeline.options import ConvertOptions
    from app.storage import images as image_store

    shutil.rmtree(crops, ignore_errors=True)
    crops.mkdir()
    options = ConvertOptions(mode=mode, images=images)
    started = time.perf_counter()
    result = await convert_document(pool, pdf, options, images=image_store.image_target(settings, images, crops))
    result = await asyncio.to_thread(image_store.finalize, result, crops, images, settings)
    return time.perf_counter() - started, result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests import pdfgen

    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as scratch:
        pdf = pdfgen.figure_pdf(Path(scratch) / "figures.pdf", pages=args.pages)
        crops = Path(scratch) / "crops"
        seconds: dict[str, list[float]] = {"none": [], "refer": []}
        stage: list[float] = []
        written: dict[str, Any] = {}
        async with running_pool(settings) as (pool, warmup_s):
            await _one(pool, pdf, args.mode, "none", crops, settings)  # first-document costs, not counted
            for round_number in range(args.rounds):
                for images in ("none", "refer"):
                    elapsed, result = await _one(pool, pdf, args.mode, images, crops, settings)
                    seconds[images].append(elapsed)
                    progress("round %d %s: %.2fs (%.2f pages/s)", round_number + 1, images, elapsed,
                             args.pages / elapsed)
                    if images == "refer":
                        stage += [p.timings.get("images", 0.0) for p in result.pages]
                        files = sorted(crops.iterdir())
                        written = {"count": len(files), "bytes": sum(f.stat().st_size for f in files),
                                   "png": sum(f.suffix == ".png" for f in files),
                                   "jpg": sum(f.suffix == ".jpg" for f in files)}
    rate = {k: args.pages * len(v) / sum(v) for k, v in seconds.items()}
    ratio = rate["refer"] / rate["none"]
    return {
        "benchmark": "image_export",
        "mode": args.mode,
        "pages": args.pages,
        "rounds": args.rounds,
        "workers": settings.workers,
        "image_dpi": settings.image_dpi,
        "pool_warmup_s": round(warmup_s, 2),
        "pages_per_s": {k: round(v, 2) for k, v in rate.items()},
        "refer_vs_none": round(ratio, 3),
        "images_stage_s_per_page": summary(stage),
        "crops_per_document": written,
        "target": {"refer_vs_none_at_least": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="auto", choices=("auto", "ocr"))
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="4 pages, one round")
    parser.add_argument("--limit", type=int, default=None, help="pages (same as --pages)")
    args = parser.parse_args()
    if args.quick:
        args.pages, args.rounds = 4, 1
    if args.limit:
        args.pages = args.limit
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
