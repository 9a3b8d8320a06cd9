"""A folder of one-page scans the way a user converts it: `python -m app convert DIR/*.pdf -o OUT`, end to end
(process start, model loading, intake, writing the results), against tesseract on the same pages in the same run.

    python -m bench.scan_folder --files 16 --workers 2 --threads 1      # the issue's folder: pages/s vs tesseract
    python -m bench.scan_folder --files 8 --rotations 0,90,180,270     # pages turned: word F1 per angle
    python -m bench.scan_folder --quick

The pages are the dense born-digital eval pages (bench.common.DENSE_PAGES), rasterised at `--dpi` (repeated to make
`--files` files), each saved as a PNG and an image-only one-page PDF; with `--rotations`, each set is the same
pages turned clockwise by that angle. Contenders:
- ours: one `python -m app convert` process over the set's PDFs (default mode, so `auto`, which OCRs pages without a
  text layer), `WORKERS=--workers`, `THREADS_PER_WORKER=--threads`; the wall time includes its start-up;
- tesseract: `tesseract page.png stdout` per page, `--workers` processes at a time, `OMP_THREAD_LIMIT=--threads`,
  run before and after ours (both passes summed, so load from elsewhere weighs on both alike).
Accuracy is bench.scan_ocr's scoring (word F1, order-tolerant CER) against the source page's text layer; the JSON
result's `rotation` per page is reported too. Targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import DENSE_PAGES, PDF_DIR, emit, progress, tesseract_text
from bench.common import summary as stats_summary
from bench.scan_ocr import aggregate, score

TARGETS = {"pages_per_s_vs_tesseract": 1.0, "word_f1_turned_min": 0.95, "word_f1_turned_vs_upright_max_drop": 0.02}
ROOT = Path(__file__).resolve().parents[1]


def make_set(out_dir: Path, files: int, dpi: int, rotation: int) -> list[dict[str, Any]]:
    """`files` one-page scans (PNG + image-only PDF) turned clockwise by `rotation`, each with its reference."""
    import pypdfium2 as pdfium
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [PDF_DIR / name for name in DENSE_PAGES]
    pages = []
    for index in range(files):
        source = sources[index % len(sources)]
        document = pdfium.PdfDocument(str(source))
        try:
            page = document[0]
            reference = page.get_textpage().get_text_range()
            image = page.render(scale=dpi / 72).to_pil().convert("RGB")
        finally:
            document.close()
        if rotation:
            image = image.rotate(-rotation, expand=True)  # PIL turns counter-clockwise
        stem = f"{index:03d}-{source.stem}"
        png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
        image.save(png)
        Image.Image.save(image, pdf, "PDF", resolution=float(dpi))
        pages.append({"stem": stem, "png": png, "pdf": pdf, "reference": reference})
    return pages


def run_ours(pages: list[dict[str, Any]], out_dir: Path, workers: int, threads: int) -> dict[str, Any]:
    env = {**os.environ, "WORKERS": str(workers), "THREADS_PER_WORKER": str(threads), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "app", "convert", *[str(p["pdf"]) for p in pages], "-o", str(out_dir), "-q"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"convert exited {done.returncode}: {done.stderr[-2000:]}")
    from bench.common import plain_text_of
    from app.pipeline.result import DocumentResult

    texts, rotations, stages = [], [], {}
    for page in pages:
        result = DocumentResult.model_validate_json((out_dir / f"{page['stem']}.json").read_text())
        texts.append(plain_text_of(result.pages[0]))
        rotations.append(getattr(result.pages[0], "rotation", None))
        for stage, seconds in result.pages[0].timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    return {"texts": texts, "wall_s": wall, "rotations": rotations, "stages": stages}


def run_tesseract(pages: list[dict[str, Any]], workers: int, threads: int, dpi: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        texts = list(executor.map(lambda p: tesseract_text(p["png"], dpi, threads), pages))
    return {"texts": texts, "wall_s": time.perf_counter() - started}


def report(raw: dict[str, Any], pages: list[dict[str, Any]], runs: int = 1) -> dict[str, Any]:
    scores = [score(text, page["reference"]) for text, page in zip(raw["texts"], pages, strict=True)]
    out = {"pages_per_s": round(len(pages) * runs / raw["wall_s"], 4), "wall_s": round(raw["wall_s"], 3),
           **aggregate(scores), "word_f1_pages": stats_summary([s["words"]["f1"] for s in scores])}
    if "rotations" in raw:
        out["rotations_applied"] = sorted({str(r) for r in raw["rotations"]})
    if raw.get("stages"):
        # What the orientation classifier and the speck check cost, as a share of the pages' time in the workers.
        work = sum(raw["stages"].values())
        out["stage_share"] = {k: round(v / work, 4) for k, v in sorted(raw["stages"].items()) if work}
    return out


def main_sync(args: argparse.Namespace) -> dict[str, Any]:
    rotations = [int(r) for r in args.rotations.split(",")]
    files = 2 if args.quick else args.files
    doc: dict[str, Any] = {"benchmark": "scan_folder", "files": files, "dpi": args.dpi, "workers": args.workers,
                           "threads_per_worker": args.threads, "targets": TARGETS, "sets": {}}
    tesseract_ok = shutil.which("tesseract") is not None and not args.no_tesseract
    with tempfile.TemporaryDirectory(prefix="bench-folder-") as tmp:
        for rotation in rotations:
            progress("rotation %d: %d one-page scans at %d DPI", rotation, files, args.dpi)
            pages = make_set(Path(tmp) / f"in-{rotation}", files, args.dpi, rotation)
            entry: dict[str, Any] = {}
            first = run_tesseract(pages, args.workers, args.threads, args.dpi) if tesseract_ok else None
            progress("ours: python -m app convert (%d workers x %d threads)", args.workers, args.threads)
            entry["ours"] = report(run_ours(pages, Path(tmp) / f"out-{rotation}", args.workers, args.threads), pages)
            if first is not None:
                second = run_tesseract(pages, args.workers, args.threads, args.dpi)
                both = {"texts": first["texts"], "wall_s": first["wall_s"] + second["wall_s"]}
                entry["tesseract"] = report(both, pages, runs=2)
                entry["tesseract"]["pass_wall_s"] = [round(first["wall_s"], 3), round(second["wall_s"], 3)]
                entry["pages_per_s_ours_over_tesseract"] = round(
                    entry["ours"]["pages_per_s"] / entry["tesseract"]["pages_per_s"], 4)
            doc["sets"][str(rotation)] = entry
    upright = doc["sets"].get("0", {}).get("ours", {}).get("word_f1")
    if upright is not None:
        doc["word_f1_drop_vs_upright"] = {
            angle: round(upright - entry["ours"]["word_f1"], 4) for angle, entry in doc["sets"].items() if angle != "0"}
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scan_folder", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16, help="one-page scans per set")
    parser.add_argument("--limit", type=int, dest="files", help="same as --files")
    parser.add_argument("--quick", action="store_true", help="two files")
    parser.add_argument("--rotations", default="0", help="sets turned clockwise by these angles (comma-separated)")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-tesseract", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(main_sync(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
