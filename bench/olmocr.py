"""olmOCR-Bench sample: convert the pages the facts name, check every fact, print pass rates per mode as JSON.

    python -m bench.olmocr                      # auto, text, ocr (+ vl when the sidecar is configured)
    python -m bench.olmocr --modes text --quick # a couple of PDFs, one mode
    python -m bench.olmocr --verbose            # also list every failing fact with a short reason

Only the pages the facts reference are converted (`pages=`). One pool serves every mode; its warm-up is not
counted. The facts are the benchmark authors'; this script never edits them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bench.common import DATASET, PDF_DIR, bench_settings, convert, emit, progress, running_pool
from bench.facts import PageOutput, Verdict, check_fact, load_facts, summarize

AIMS = {"present": 0.90, "absent": 0.80, "order": 0.70}
QUICK_PDFS = ("multi_column_miss.pdf", "headers_footers/ff0f0b22c55d8b90dd77d153f48e144fc9db_pg2.pdf",
              "olmo2-pg4.pdf")


def group_by_pdf(facts: list[dict[str, Any]]) -> OrderedDict[str, list[dict[str, Any]]]:
    groups: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for fact in facts:
        groups.setdefault(fact["pdf"], []).append(fact)
    return groups


async def _vl_recognizer(settings: Any) -> tuple[Any, str | None]:
    """The sidecar recognizer when `vl` can run here, else (None, why not)."""
    if not settings.vlm_enabled:
        return None, "VLM sidecar not configured (PROFILE=gpu or USE_VLM_API=true)"
    from app.vlm.client import VlmClient
    from app.vlm.recognizer import VlRecognizer

    client = VlmClient(settings)
    if not await client.check():
        await client.aclose()
        return None, f"sidecar unavailable: {client.last_error}"
    return VlRecognizer(client, settings), None


async def run_mode(pool: Any, mode: str, groups: OrderedDict[str, list[dict[str, Any]]], *, vl: Any = None,
                   dump_dir: Path | None = None) -> dict[str, Any]:
    results: list[tuple[dict[str, Any], Verdict]] = []
    pages_done = 0
    errors: list[str] = []
    started = time.perf_counter()
    for pdf, facts in groups.items():
        page_indices = sorted({int(f.get("page", 1)) - 1 for f in facts})
        try:
            document = await convert(pool, PDF_DIR / pdf, mode, page_indices, vl=vl)
        except Exception as exc:  # one broken conversion must not hide the other facts' results
            reason = f"conversion failed: {type(exc).__name__}: {str(exc)[:120]}"
            progress("%s [%s] %s", pdf, mode, reason)
            errors.append(f"{pdf}: {reason}")
            results.extend((fact, Verdict(False, reason)) for fact in facts)
            continue
        outputs = {page.page: PageOutput.from_page(page) for page in document.pages}
        pages_done += len(document.pages)
        if dump_dir is not None:
            for page in document.pages:
                target = dump_dir / mode / f"{pdf.replace('/', '__')}.p{page.page}.md"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(page.markdown, encoding="utf-8")
        for fact in facts:
            output = outputs.get(int(fact.get("page", 1)))
            verdict = check_fact(fact, output) if output is not None else Verdict(False, "page missing in result")
            results.append((fact, verdict))
        progress("%s [%s]: %d/%d facts pass", pdf, mode, sum(v.passed for f, v in results if f["pdf"] == pdf),
                 len(facts))
    elapsed = time.perf_counter() - started
    report = summarize(results)
    report["pages"] = pages_done
    report["seconds"] = round(elapsed, 3)
    report["conversion_errors"] = errors
    report["aims_met"] = {
        kind: report["per_type"][kind]["rate"] >= aim for kind, aim in AIMS.items() if kind in report["per_type"]
    }
    report["_results"] = results
    return report


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    facts = load_facts(args.dataset)
    groups = group_by_pdf(facts)
    if args.pdf:
        groups = OrderedDict((k, v) for k, v in groups.items() if k in args.pdf)
    elif args.quick:
        groups = OrderedDict((k, v) for k, v in groups.items() if k in QUICK_PDFS)
    if args.limit:
        groups = OrderedDict(list(groups.items())[: args.limit])
    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    modes = args.modes or (["auto", "text"] if args.quick else ["auto", "text", "ocr"])
    vl, vl_skip = (None, None)
    if "vl" in modes or (not args.modes and settings.vlm_enabled):
        vl, vl_skip = await _vl_recognizer(settings)
        if vl is not None and "vl" not in modes:
            modes.append("vl")
    doc: dict[str, Any] = {
        "benchmark": "olmocr-bench-sample",
        "dataset": str(args.dataset),
        "facts": sum(len(v) for v in groups.values()),
        "facts_in_dataset": len(facts),
        "pdfs": len(groups),
        "workers": settings.workers,
        "threads_per_worker": settings.threads_per_worker,
        "aims": AIMS,
        "modes": {},
    }
    async with running_pool(settings) as (pool, warmup_s):
        doc["warmup_s"] = round(warmup_s, 3)
        for mode in modes:
            if mode == "vl" and vl is None:
                doc["modes"]["vl"] = {"skipped": vl_skip}
                continue
            progress("mode %s: %d PDFs", mode, len(groups))
            report = await run_mode(pool, mode, groups, vl=vl, dump_dir=args.dump)
            results = report.pop("_results")
            if args.verbose:
                report["failures"] = [
                    {"id": f["id"], "type": f["type"], "reason": v.reason} for f, v in results if not v.passed
                ]
            doc["modes"][mode] = report
    if vl_skip and "vl" not in doc["modes"]:
        doc["modes"]["vl"] = {"skipped": vl_skip}
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.olmocr", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                        help="comma-separated: auto,text,ocr,vl (default: auto,text,ocr; +vl with a sidecar)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N PDFs")
    parser.add_argument("--quick", action="store_true", help="three PDFs, auto and text modes")
    parser.add_argument("--pdf", action="append", help="only this PDF (path under pdfs/); repeatable")
    parser.add_argument("--verbose", action="store_true", help="list failing facts with reasons")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--workers", type=int, help="page workers (default: settings)")
    parser.add_argument("--threads", type=int, help="ONNX threads per worker (default: settings)")
    parser.add_argument("--dump", type=Path, help="write each page's Markdown under this directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emit(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
