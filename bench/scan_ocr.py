"""Scanned-page OCR: our `ocr` mode against tesseract and against our own raw engines, on clean and worn scans.

    python -m bench.scan_ocr --workers 2 --threads 1 --quality fast,balanced,best   # the issue's comparison
    python -m bench.scan_ocr --quick         # two pages
    python -m bench.scan_ocr --limit 3 --sets worn --no-tesseract --verbose

Each born-digital page is rasterised (the `clean` set) and a copy of it is worn by `bench.worn.degrade` with a
per-page seed (the `worn` set: skew, uneven light, blur, noise, JPEG); each goes to an image-only PDF and a PNG. The
page's own text layer is the reference for both. Contenders read the same pixels with the same thread budget:
- ours: the image-only PDFs through the PagePool in `ocr` mode (warm-up excluded), all documents submitted at once,
  once per `--quality` (OCR_QUALITY);
- tesseract: `tesseract page.png stdout` per page (OMP_THREAD_LIMIT = threads), `--workers` processes at a time; it
  runs before and after ours and is reported from both passes, so that load from elsewhere on a shared machine
  weighs on both sides alike;
- raw engine: our layout `detect` + OCR `recognize` called in-process on the decoded clean images, no pool, no PDF.
Speed is reported as pages/s (wall) and as CPU-seconds per page (the processes' own CPU time), whose ratio holds on
a machine that others are using too.

Accuracy: CER and bag-of-words F1 against the reference. Reading order is not what this measures, so the
reported CER (`cer`) is order-tolerant: the hypothesis lines are put in the order of where each best aligns in the
reference before the edit distance is taken; `cer_as_read` is the plain sequence CER. Both sides are NFKC-normalised,
quotes/dashes unified, accents dropped (TeX's text layers spell them as loose spacing marks), end-of-line hyphens
joined, dot leaders dropped and white space collapsed; words split where letters meet digits (a superscript is glued
to its base in some text layers and not in others).
Targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from bench.common import (
    DENSE_PAGES,
    PDF_DIR,
    bench_settings,
    convert,
    emit,
    page_service_s,
    plain_text_of,
    progress,
    running_pool,
    tesseract_text,
)
from bench.common import summary as stats_summary
from bench.worn import FAMILIES

TARGETS = {
    "balanced": {"word_f1_worn": ">= tesseract", "word_f1_clean": 0.98, "pages_per_s_vs_tesseract": 1.0},
    "best": {"time_vs_tesseract_max": 3.0},
    "pipeline_overhead_max": 0.05,
}
SEED = 17


# --- scoring -------------------------------------------------------------------------------------------------------
_CHAR_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                           "\u2212": "-", "\u00ad": "", "\ufffe": "", "\u200b": ""})
# Only letters: "406–\n415" (a page range broken after its dash, math_2503_04086) is not a hyphenated word.
_HYPHEN_BREAK = re.compile(r"([^\W\d_])-[ \t]*\r?\n[ \t]*([^\W\d_])")
_WORD = re.compile(r"\w+")
_LETTERS_OR_DIGITS = re.compile(r"\d+|[^\W\d]+|_+")
# Dot leaders and rules ("......", "____") are drawing, not text; engines disagree on how many they read.
_LEADERS = re.compile(r"([.\u2026_\-=\u00b7\u2022*~])(?:\s?\1){3,}")


# TeX places an accent as its own glyph over the letter, and the text layer gives it as a spacing character with
# gaps round it: "Jan Min ´ a´c" for "Ján Mináč", "Milan Basiˇ c" for "Milan Bašić" (math_2503_04086). No reader
# can produce that, so accents are dropped on both sides (NFKD, combining marks removed) and a stray accent between
# two letters takes its gaps with it ("Min ´ a´c" -> "Minac", as "Mináč" -> "Minac").
_SPACING_ACCENTS = "\u00b4\u02c7\u02c6\u00a8\u0060\u02dc\u00af\u02d8\u02d9\u02da\u00b8\u02db\u02dd\u02ca\u02cb"
_ACCENT = f"(?: ?[\u0300-\u036f]+|[{_SPACING_ACCENTS}])"  # NFKC turns "´" into a space + combining acute
_ACCENT_IN_WORD = re.compile(rf"(?<=\w)[ \t]*{_ACCENT}[ \t]*(?=\w)")  # within a line: "and ˇ\nNguyen" are two words
_ACCENT_ALONE = re.compile(_ACCENT)


def _drop_accents(text: str) -> str:
    text = _ACCENT_ALONE.sub(" ", _ACCENT_IN_WORD.sub("", text))
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def normalize_lines(text: str) -> list[str]:
    """Lines of comparable text: NFKC, unified punctuation, accents dropped, hyphenated line breaks joined, spaces
    collapsed."""
    text = _drop_accents(unicodedata.normalize("NFKC", text).translate(_CHAR_MAP))
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _LEADERS.sub(" ", text)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if line]


def reorder_to_reference(hyp_lines: list[str], reference: str) -> list[str]:
    """Sort hypothesis lines by where each aligns best in the reference (stable for ties)."""
    keyed = []
    for index, line in enumerate(hyp_lines):
        alignment = fuzz.partial_ratio_alignment(line, reference) if len(line) > 1 else None
        start = alignment.dest_start if alignment is not None and alignment.score > 0 else len(reference)
        keyed.append((start, index, line))
    return [line for _, _, line in sorted(keyed)]


def words_of(text: str) -> list[str]:
    """The words F1 counts: `\\w+` runs, split where letters meet digits. A superscript or subscript sits beside
    its base with no space in the pixels, and the text layer glues it on or not by the glyphs' gap: "Shaffer1" and
    "10Department" (affiliation marks) but "16t 2" for 16t² (openstax_caculus_pg_273), "a 2" for a² (mathfuncs).
    Split, "Garry4", "Garry 4" and "Garry⁴" are the same three tokens on both sides."""
    return [part for word in _WORD.findall(text) for part in _LETTERS_OR_DIGITS.findall(word)]


def word_f1(hypothesis: str, reference: str) -> dict[str, float]:
    hyp, ref = Counter(words_of(hypothesis)), Counter(words_of(reference))
    common = sum((hyp & ref).values())
    precision = common / max(1, sum(hyp.values()))
    recall = common / max(1, sum(ref.values()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def score(hypothesis: str, reference: str) -> dict[str, Any]:
    ref = " ".join(normalize_lines(reference))
    hyp_lines = normalize_lines(hypothesis)
    as_read = " ".join(hyp_lines)
    ordered = " ".join(reorder_to_reference(hyp_lines, ref))
    n = max(1, len(ref))
    return {
        "cer": round(Levenshtein.distance(ordered, ref) / n, 4),
        "cer_as_read": round(Levenshtein.distance(as_read, ref) / n, 4),
        "ref_chars": len(ref),
        "words": word_f1(as_read, ref),
    }


def aggregate(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Character-weighted CER (long pages count more) and word F1 averaged over pages."""
    if not scores:
        return {}
    chars = sum(s["ref_chars"] for s in scores)
    return {
        "cer": round(sum(s["cer"] * s["ref_chars"] for s in scores) / chars, 4),
        "cer_as_read": round(sum(s["cer_as_read"] * s["ref_chars"] for s in scores) / chars, 4),
        "word_f1": round(sum(s["words"]["f1"] for s in scores) / len(scores), 4),
        "word_f1_min": min(s["words"]["f1"] for s in scores),
    }


# --- inputs ----------------------------------------------------------------------------------------------------------
@dataclass
class ScanPage:
    name: str
    png: Path
    pdf: Path
    reference: str


    wear: dict[str, Any] | None = None


def rasterise(sources: list[Path], out_dir: Path, dpi: int, seed: int = SEED,
              families: tuple[str, ...] = ()) -> dict[str, list[ScanPage]]:
    """First page of each source -> PNG + image-only PDF at `dpi`, clean and worn (seed + the page's index), and
    one set per wear family (`worn-<family>`, bench.worn.degrade_family); the source's text layer is the reference
    of all."""
    import numpy as np
    import pypdfium2 as pdfium
    from PIL import Image

    from bench.worn import degrade, degrade_family

    sets: dict[str, list[ScanPage]] = {"clean": [], "worn": [], **{f"worn-{f}": [] for f in families}}
    for index, source in enumerate(sources):
        document = pdfium.PdfDocument(str(source))
        try:
            page = document[0]
            reference = page.get_textpage().get_text_range()
            image = page.render(scale=dpi / 72).to_pil().convert("RGB")
        finally:
            document.close()
        worn, wear = degrade(np.asarray(image), seed + index)
        variants = [("clean", image, None), ("worn", Image.fromarray(worn), wear.as_dict())]
        for family in families:
            pixels, drawn = degrade_family(np.asarray(image), family, seed + index)
            variants.append((f"worn-{family}", Image.fromarray(pixels), drawn))
        for name, pixels, wear_dict in variants:
            png, pdf = out_dir / f"{name}-{source.stem}.png", out_dir / f"{name}-{source.stem}.pdf"
            pixels.save(png)
            pixels.save(pdf, "PDF", resolution=float(dpi))
            sets[name].append(ScanPage(source.stem, png, pdf, reference, wear_dict))
    return sets


def _children_cpu_s() -> float:
    """CPU seconds of this process's live children (the pool's workers), user + system."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _reaped_children_cpu_s() -> float:
    """CPU seconds of this process's finished children (tesseract runs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- contenders ------------------------------------------------------------------------------------------------
async def run_ours(sets: dict[str, list[ScanPage]], settings: Any, dpi: int, lang: str = "auto",
                   mode: str = "ocr") -> dict[str, dict[str, Any]]:
    """Each set through one warmed-up pool in turn; per set, the raw outcome `contender_report` scores."""
    results = {}
    async with running_pool(settings) as (pool, warmup_s):
        for name, pages in sets.items():
            cpu0, started = _children_cpu_s(), time.perf_counter()

            async def one(page: ScanPage) -> tuple[Any, float]:
                t0 = time.perf_counter()
                document = await convert(pool, page.pdf, mode, [0], dpi=dpi, lang=lang)
                return document, time.perf_counter() - t0

            outcomes = await asyncio.gather(*(one(p) for p in pages))
            wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu0
            texts = [plain_text_of(doc.pages[0]) for doc, _ in outcomes]
            service = [s for s in (page_service_s(doc.pages[0]) for doc, _ in outcomes) if s is not None]
            results[name] = {"texts": texts, "wall_s": wall, "cpu_s": cpu, "warmup_s": warmup_s,
                             "page_service_s": service, "latency_s": [lat for _, lat in outcomes]}
    return results


def run_tesseract(pages: list[ScanPage], workers: int, threads: int, dpi: int, lang: str = "eng") -> dict[str, Any]:
    binary = shutil.which("tesseract")
    if binary is None:
        raise FileNotFoundError("tesseract not on PATH (apt-get install -y tesseract-ocr)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]

    def one(page: ScanPage) -> tuple[str, float]:
        t0 = time.perf_counter()
        text = tesseract_text(page.png, dpi, threads, lang)
        return text, time.perf_counter() - t0

    one(pages[0])  # page cache and traineddata load, as our pool gets a warm-up
    cpu0, started = _reaped_children_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        outcomes = list(executor.map(one, pages))
    wall, cpu = time.perf_counter() - started, _reaped_children_cpu_s() - cpu0
    return {"texts": [t for t, _ in outcomes], "wall_s": wall, "cpu_s": cpu, "page_service_s": [s for _, s in outcomes],
            "version": version}


def merge_passes(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two tesseract passes over the same pages as one contender: summed time, the first pass's text (tesseract
    is deterministic), and each pass's pages/s kept for the record."""
    return {**first, "wall_s": first["wall_s"] + second["wall_s"], "cpu_s": first["cpu_s"] + second["cpu_s"],
            "page_service_s": first["page_service_s"] + second["page_service_s"], "passes": 2,
            "pass_wall_s": [round(first["wall_s"], 3), round(second["wall_s"], 3)]}


def run_raw_engines(pages: list[ScanPage], settings: Any, dpi: int) -> dict[str, Any]:
    """Layout detect + OCR recognize in this process, on the decoded page images: the floor our pipeline sits on."""
    import numpy as np
    from PIL import Image

    from app.pipeline.layout import create_layout_engine
    from app.pipeline.recognize.ocr import create_ocr_engine

    layout, ocr = create_layout_engine(settings), create_ocr_engine(settings)
    for engine in (layout, ocr):
        engine.load()
        engine.warmup()
    images = [np.asarray(Image.open(p.png).convert("RGB")) for p in pages]
    per_page, texts = [], []
    for image in images:
        t0 = time.perf_counter()
        layout.detect(image)
        lines = ocr.recognize(image, dpi=dpi)
        per_page.append(time.perf_counter() - t0)
        # Top-to-bottom text is only for a sanity score; ordering is not the raw engine's job.
        texts.append("\n".join(line.text for line in sorted(lines, key=lambda ln: (ln.bbox[1], ln.bbox[0]))))
    return {"texts": texts, "wall_s": sum(per_page), "page_service_s": per_page}



def contender_report(raw: dict[str, Any], pages: list[ScanPage], verbose: bool) -> dict[str, Any]:
    scores = [score(text, page.reference) for text, page in zip(raw["texts"], pages, strict=True)]
    read = len(pages) * raw.get("passes", 1)
    report: dict[str, Any] = {
        "pages_per_s": round(read / raw["wall_s"], 4) if raw["wall_s"] else None,
        "cpu_s_per_page": round(raw["cpu_s"] / read, 3) if raw.get("cpu_s") else None,
        "wall_s": round(raw["wall_s"], 3),
        "s_per_page": stats_summary(raw["page_service_s"]),
        **aggregate(scores),
    }
    for key in ("warmup_s", "version", "pass_wall_s"):
        if key in raw:
            report[key] = round(raw[key], 3) if isinstance(raw[key], float) else raw[key]
    if "latency_s" in raw:
        report["latency_s"] = stats_summary(raw["latency_s"])
    if verbose:
        report["per_page"] = {p.name: {**s, **({"wear": p.wear} if p.wear else {})}
                              for p, s in zip(pages, scores, strict=True)}
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def main_sync(args: argparse.Namespace) -> dict[str, Any]:
    names = args.pdf or list(DENSE_PAGES)
    if args.quick:
        names = names[:2]
    if args.limit:
        names = names[: args.limit]
    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    qualities = args.quality.split(",") if args.quality else [settings.ocr_quality]
    set_names = args.sets.split(",")
    doc: dict[str, Any] = {
        "benchmark": "scan_ocr",
        "pages": len(names),
        "dpi": args.dpi,
        "seed": args.seed,
        "workers": settings.workers,
        "threads_per_worker": settings.threads_per_worker,
        "ocr_engine": settings.ocr_engine,
        "cer_basis": "cer: hypothesis lines reordered to their best alignment in the reference (order-tolerant); "
                     "cer_as_read: output order as produced. Both character-weighted over pages.",
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        progress("rasterising %d pages at %d DPI, worn with seed %d", len(names), args.dpi, args.seed)
        families = tuple(FAMILIES) if args.families == "all" else tuple(f for f in args.families.split(",") if f)
        set_names += [f"worn-{f}" for f in families]
        sets = {k: v for k, v in rasterise([PDF_DIR / n for n in names], Path(tmp), args.dpi, args.seed,
                                           families).items() if k in set_names}
        tesseract_passes: list[dict[str, dict[str, Any]]] = []

        def tesseract_pass() -> None:
            if args.no_tesseract:
                return
            progress("tesseract: %d process(es), OMP_THREAD_LIMIT=%d", settings.workers, settings.threads_per_worker)
            try:
                tesseract_passes.append({name: run_tesseract(pages, settings.workers, settings.threads_per_worker,
                                                             args.dpi) for name, pages in sets.items()})
            except (FileNotFoundError, subprocess.SubprocessError) as exc:
                doc["tesseract"] = {"skipped": str(exc)}

        tesseract_pass()
        ours_raw = {}
        for quality in qualities:
            progress("ours: ocr mode through the pool, OCR_QUALITY=%s", quality)
            ours_raw[quality] = asyncio.run(run_ours(sets, settings.model_copy(update={"ocr_quality": quality}),
                                                     args.dpi))
        if tesseract_passes:
            tesseract_pass()
        if not args.no_raw and "clean" in sets:
            progress("raw engines in-process on the clean set (%d threads)", settings.threads_per_worker)
            doc["raw_engine"] = contender_report(
                run_raw_engines(sets["clean"], settings.model_copy(update={"ocr_quality": qualities[0]}), args.dpi),
                sets["clean"], args.verbose)
    doc["ours"] = {q: {name: contender_report(raw[name], sets[name], args.verbose) for name in sets}
                   for q, raw in ours_raw.items()}
    if len(tesseract_passes) == 2:
        doc["tesseract"] = {name: contender_report(merge_passes(tesseract_passes[0][name], tesseract_passes[1][name]),
                                                   pages, args.verbose) for name, pages in sets.items()}
    doc["ratios"] = ratios(doc, settings, qualities)
    return doc


def ratios(doc: dict[str, Any], settings: Any, qualities: list[str]) -> dict[str, Any]:
    """Ours over tesseract per quality and set: pages/s (wall), CPU-s per page inverted (so > 1 is faster), F1."""
    out: dict[str, Any] = {}
    tesseract = doc.get("tesseract", {})
    for quality in qualities:
        for name, ours in doc["ours"][quality].items():
            tess = tesseract.get(name, {}) if isinstance(tesseract, dict) else {}
            out[f"{quality}.{name}"] = {
                "pages_per_s_ours_over_tesseract": _ratio(ours.get("pages_per_s"), tess.get("pages_per_s")),
                "cpu_speed_ours_over_tesseract": _ratio(tess.get("cpu_s_per_page"), ours.get("cpu_s_per_page")),
                "word_f1_ours_minus_tesseract": (round(ours["word_f1"] - tess["word_f1"], 4)
                                                 if "word_f1" in tess else None),
                "cer_ours_over_tesseract": _ratio(ours.get("cer"), tess.get("cer")),
            }
    raw_engine = doc.get("raw_engine", {})
    clean = doc["ours"][qualities[0]].get("clean")
    if raw_engine.get("wall_s") and clean:
        # Same thread budget on both sides only when the pool has one worker; otherwise the pool runs pages in
        # parallel and wall time is not comparable with the sequential raw loop.
        if settings.workers == 1:
            out["pipeline_overhead"] = round(clean["wall_s"] / raw_engine["wall_s"] - 1, 4)
        else:
            out["pipeline_overhead"] = None
            out["pipeline_overhead_note"] = "needs --workers 1 (raw engines run one page at a time)"
        if clean["s_per_page"]["median"] and raw_engine["s_per_page"]["median"]:
            out["page_service_over_raw_median"] = round(
                clean["s_per_page"]["median"] / raw_engine["s_per_page"]["median"] - 1, 4)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scan_ocr", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    parser.add_argument("--quick", action="store_true", help="two pages")
    parser.add_argument("--pdf", action="append", help="a PDF under the eval pdfs/ dir (repeatable)")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--sets", default="clean,worn", help="clean, worn or both (comma-separated)")
    parser.add_argument("--families", default="", help="wear families, one set each (bench.worn.FAMILIES, "
                        "comma-separated, or all); `--sets clean` keeps the mixed `worn` set out")
    parser.add_argument("--seed", type=int, default=SEED, help="worn set: page i is worn with seed + i")
    parser.add_argument("--quality", help="OCR_QUALITY values to run ours with, comma-separated "
                        "(default: the setting's)")
    parser.add_argument("--workers", type=int, default=1, help="pool workers and parallel tesseract processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker / OMP_THREAD_LIMIT")
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--no-raw", action="store_true", help="skip the in-process raw engine timing")
    parser.add_argument("--verbose", action="store_true", help="per-page scores")
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(main_sync(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
