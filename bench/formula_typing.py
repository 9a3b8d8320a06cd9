"""Block typing on scans: which regions the layout model labels `formula` keep that type (app/pipeline/formula.py).

    python -m bench.formula_typing             # every eval PDF's first page, rasterised at 200 DPI
    python -m bench.formula_typing --limit 4

Each page is rasterised (a scan of a born-digital page), layout and OCR run in-process as the `ocr` mode does, and
every `formula` region's OCR text is listed with the decision: `formula` (it has a mathematical sign, or is not
made of words) or `text`. The page's own text layer says nothing about which is right, so the list is printed
for a reader to judge; `--expect FILE` (JSON: {"page name": {"region text prefix": "formula"|"text"}}) scores it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import PDF_DIR, bench_settings, emit, progress


def page_image(path: Path, dpi: int):
    import numpy as np
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        return np.asarray(document[0].render(scale=dpi / 72).to_pil().convert("RGB"))
    finally:
        document.close()


def main_sync(args: argparse.Namespace) -> dict[str, Any]:
    from app.pipeline.assemble import _assign
    from app.pipeline.formula import reads_as_formula
    from app.pipeline.page import Engines
    from app.pipeline.textblocks import join_lines

    settings = bench_settings(threads_per_worker=args.threads)
    engines = Engines(settings)
    engines.load()
    paths = sorted(PDF_DIR.rglob("*.pdf"))[: args.limit or None]
    expected = json.loads(Path(args.expect).read_text()) if args.expect else {}
    regions_out, agree, judged = [], 0, 0
    for path in paths:
        name = str(path.relative_to(PDF_DIR))
        progress("%s", name)
        image = page_image(path, args.dpi)
        regions = engines.layout.detect(image)
        lines = engines.ocr.recognize(image, dpi=args.dpi)
        assigned, _ = _assign(lines, regions)
        for region, members in zip(regions, assigned, strict=True):
            if region.label != "formula":
                continue
            ordered = sorted(members, key=lambda ln: (ln.bbox[1], ln.bbox[0]))
            text = join_lines([ln.text for ln in ordered])
            decision = "formula" if reads_as_formula(text) else "text"
            entry = {"page": name, "text": text[:120], "decision": decision}
            truth = next((v for k, v in expected.get(name, {}).items() if text.startswith(k)), None)
            if truth is not None:
                entry["expected"] = truth
                judged += 1
                agree += truth == decision
            regions_out.append(entry)
    doc: dict[str, Any] = {
        "benchmark": "formula_typing", "pages": len(paths), "dpi": args.dpi,
        "formula_regions": len(regions_out),
        "kept_formula": sum(r["decision"] == "formula" for r in regions_out),
        "retyped_text": sum(r["decision"] == "text" for r in regions_out),
        "regions": regions_out,
    }
    if judged:
        doc["agreement_with_expected"] = {"judged": judged, "agree": agree, "rate": round(agree / judged, 4)}
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.formula_typing", description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="four pages")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--expect", help="JSON of expected decisions per page (region text prefix -> type)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.limit = 4
    emit(main_sync(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
