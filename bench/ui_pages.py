"""The web UI's page images: GET /jobs/{id}/pages/{n}.png against the bare render it wraps, and the UI's weight.

    python -m bench.ui_pages [--quick] [--limit N] [--repeats 5] [--dpi 120]

For each eval PDF (bench.common.DENSE_PAGES), a `text` job on a real server, then its first page fetched
`--repeats` times over HTTP; beside it, in this process, `page_png` (render + PNG encode, what the route runs in its
thread) and `render_page` alone. Prints medians, the HTTP/direct ratio (the route's overhead: job lookup, thread
hand-off, transfer) and the PNG encode's share; plus the bytes a first visit to /ui downloads.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import DENSE_PAGES, PDF_DIR, bench_settings, emit, progress


def _median_s(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def _ui_bytes(client: httpx.Client) -> dict[str, int]:
    """Bytes of /ui and every file it loads (stylesheet, modules and what they import)."""
    sizes: dict[str, int] = {}
    page = client.get("/ui")
    sizes["/ui"] = len(page.content)
    pending = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
    while pending:
        url = pending.pop()
        if url in sizes:
            continue
        body = client.get(url)
        sizes[url] = len(body.content)
        base = url.rsplit("/", 1)[0]
        pending += [f"{base}/{m[2:]}" for m in re.findall(r'^import\b[^"\n]*"(\./[^"]+)"', body.text, re.M)]
    return sizes


def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.pipeline.pdf_input import open_pdf
    from app.pipeline.pdfium_backend import close_document, open_page
    from app.runtime.page_image import page_png
    from app.pipeline.render import render_page
    from tests.server_process import ServerProcess

    settings = bench_settings()
    names = [n for n in DENSE_PAGES if (PDF_DIR / n).exists()][: args.limit or None]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        server = ServerProcess(Path(tmp), {"WORKERS": "1"}).start()
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=120) as client:
                ui_sizes = _ui_bytes(client)
                for name in names:
                    pdf = PDF_DIR / name
                    progress("%s", name)
                    job = client.post("/jobs", files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
                                      data={"mode": "text", "pages": "1"}).json()["job_id"]
                    deadline = time.monotonic() + 300
                    while client.get(f"/jobs/{job}").json()["status"] != "succeeded":
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"job for {name} did not finish")
                        time.sleep(0.1)
                    url = f"/jobs/{job}/pages/1.png?dpi={args.dpi}"
                    http_s, size = [], 0
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        response = client.get(url)
                        http_s.append(time.perf_counter() - started)
                        response.raise_for_status()
                        size = len(response.content)
                    direct_s, render_s = [], []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        page_png(pdf, 0, args.dpi, settings)
                        direct_s.append(time.perf_counter() - started)
                        doc = open_pdf(pdf, settings)
                        try:
                            with open_page(doc, 0) as page:
                                started = time.perf_counter()
                                render_page(page, args.dpi, settings.max_page_pixels)
                                render_s.append(time.perf_counter() - started)
                        finally:
                            close_document(doc)
                    rows.append({
                        "pdf": name, "png_bytes": size, "http_median_s": _median_s(http_s),
                        "page_png_median_s": _median_s(direct_s), "render_only_median_s": _median_s(render_s),
                        "http_over_direct": round(statistics.median(http_s) / statistics.median(direct_s), 2),
                    })
        finally:
            server.stop()
    http = [r["http_median_s"] for r in rows]
    direct = [r["page_png_median_s"] for r in rows]
    render = [r["render_only_median_s"] for r in rows]
    ratios = [r["http_over_direct"] for r in rows]
    return {
        "benchmark": "ui_pages",
        "dpi": args.dpi,
        "repeats": args.repeats,
        "pages": rows,
        "summary": {
            "http_median_s": _median_s(http) if http else None,
            "page_png_median_s": _median_s(direct) if direct else None,
            "http_over_direct_median": round(statistics.median(ratios), 2) if ratios else None,
            "png_encode_share": round(1 - statistics.median(render) / statistics.median(direct), 2) if direct else None,
        },
        "ui_first_visit_bytes": sum(ui_sizes.values()),
        "ui_files": ui_sizes,
        "target": "a page switch under 0.3 s on a laptop: http_median_s; the route adds little: http_over_direct ~1",
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_pages", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 PDFs, 3 repeats")
    parser.add_argument("--limit", type=int, default=0, help="at most N PDFs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dpi", type=int, default=120)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.limit, args.repeats = args.limit or 3, min(args.repeats, 3)
    emit(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
