"""What the HTTP service adds on top of the pipeline, and whether /livez stays fast while the pool is saturated.

    python -m bench.api_overhead                 # 6 requests each way, auto mode, then the saturation probe
    python -m bench.api_overhead --quick         # 2 requests each way, a short saturation phase
    python -m bench.api_overhead --mode text --requests 20

In one run, on the same files, one after another (so each side has the cores to itself):
1. direct: `convert_document` on an in-process PagePool (warm-up excluded), one request at a time;
2. API: the real server (`python -m app serve`, HOST/PORT from the env, a scratch working directory) on a free
   port, once /readyz is 200: `POST /ocr/pdf` with the same files, one at a time;
3. saturation: `--saturate` concurrent multi-page uploads keep every worker busy while /livez is polled every
   `--probe-interval-ms`; its latency percentiles are reported (the event loop must not block on conversion).
The overhead ratio is median API latency over median direct latency, minus one; `overhead_ms` their difference.
With `--baseline-root DIR`, the server of that checkout runs beside this one's instead and requests alternate
between them (both see the same load on a shared machine): `p50_delta_ms` is ours minus the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    DENSE_PAGES,
    PDF_DIR,
    bench_settings,
    convert,
    emit,
    percentile,
    progress,
    running_pool,
    summary,
)
from tests.server_process import ServerProcess

READY_DEADLINE_S = 300.0


def start_server(workdir: Path, settings: Any, root: Path | None = None) -> ServerProcess:
    """The real server (tests/server_process.py), configured like `settings`, on the synchronous path only; with
    `root`, the code of that checkout instead of this one."""
    return ServerProcess(workdir, {
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "WORKERS": str(settings.workers),
        "THREADS_PER_WORKER": str(settings.threads_per_worker),
        "MAX_SYNC_WAIT_S": "3600",  # measure the synchronous path, never the job hand-off
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
        **({"PYTHONPATH": str(root)} if root is not None else {}),
    })


async def paired_latencies(client: httpx.AsyncClient, ours: str, theirs: str, files: list[Path], mode: str,
                           ) -> dict[str, list[float]]:
    """The same files posted to both servers, alternating which goes first, one request at a time: both sides see
    the same machine load (on a shared machine, runs minutes apart do not)."""
    latencies: dict[str, list[float]] = {"api": [], "baseline": []}
    for index, path in enumerate(files):
        order = [("api", ours), ("baseline", theirs)]
        for side, url in order if index % 2 == 0 else order[::-1]:
            status, elapsed, _ = await post_pdf(client, url, path, mode)
            if status == 200:
                latencies[side].append(elapsed)
    return latencies


async def direct_latencies(settings: Any, files: list[Path], mode: str) -> dict[str, Any]:
    async with running_pool(settings) as (pool, warmup_s):
        latencies, pages = [], 0
        for path in files:
            t0 = time.perf_counter()
            document = await convert(pool, path, mode, [0])
            latencies.append(time.perf_counter() - t0)
            pages += len(document.pages)
    return {"latency_s": latencies, "pages": pages, "warmup_s": warmup_s}


async def post_pdf(client: httpx.AsyncClient, url: str, path: Path, mode: str, pages: str | None = None
                   ) -> tuple[int, float, int]:
    data = {"mode": mode, **({"pages": pages} if pages else {})}
    t0 = time.perf_counter()
    with path.open("rb") as fh:
        response = await client.post(f"{url}/ocr/pdf", files={"file": (path.name, fh, "application/pdf")},
                                     data=data, timeout=3600)
    elapsed = time.perf_counter() - t0
    n_pages = len(response.json().get("pages", [])) if response.status_code == 200 else 0
    return response.status_code, elapsed, n_pages


async def saturate_and_probe(client: httpx.AsyncClient, url: str, pdf: Path, mode: str, uploads: int,
                             interval_s: float) -> dict[str, Any]:
    """Keep the pool busy with `uploads` concurrent conversions of `pdf` and time /livez meanwhile."""
    stop = asyncio.Event()
    probes: list[float] = []
    failures = 0

    async def probe_loop() -> None:
        nonlocal failures
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                status = (await client.get(f"{url}/livez", timeout=10)).status_code
                if status == 200:
                    probes.append(time.perf_counter() - t0)
                else:
                    failures += 1
            except httpx.TransportError:
                failures += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass

    prober = asyncio.create_task(probe_loop())
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(post_pdf(client, url, pdf, mode) for _ in range(uploads)))
    wall = time.perf_counter() - started
    stop.set()
    await prober
    statuses: dict[str, int] = {}
    for status, _, _ in outcomes:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    pages = sum(n for _, _, n in outcomes)
    return {
        "uploads": uploads,
        "statuses": statuses,
        "pages": pages,
        "wall_s": round(wall, 3),
        "pages_per_s": round(pages / wall, 3) if wall else None,
        "livez": {
            "probes": len(probes),
            "failures": failures,
            "p50_ms": round(1000 * (percentile(probes, 0.5) or 0), 2) if probes else None,
            "p99_ms": round(1000 * (percentile(probes, 0.99) or 0), 2) if probes else None,
            "max_ms": round(1000 * max(probes), 2) if probes else None,
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(workers=args.workers, threads_per_worker=args.threads)
    n_requests = 2 if args.quick else args.requests
    if args.limit:
        n_requests = min(n_requests, args.limit)
    names = args.pdf or list(DENSE_PAGES)
    files = [PDF_DIR / names[i % len(names)] for i in range(n_requests)]
    doc: dict[str, Any] = {
        "benchmark": "api_overhead",
        "mode": args.mode,
        "requests": n_requests,
        "workers": settings.workers,
        "threads_per_worker": settings.threads_per_worker,
    }
    if args.baseline_root:
        return await baseline_comparison(args, settings, files)
    progress("direct: %d conversions", n_requests)
    direct = await direct_latencies(settings, files, args.mode)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        server = start_server(Path(tmp), settings).start()
        try:
            async with httpx.AsyncClient() as client:
                ready_s = await asyncio.to_thread(server.wait_ready, READY_DEADLINE_S)
                progress("server ready on %s after %.1fs", server.url, ready_s)
                api_latencies, api_pages, bad = [], 0, {}
                for path in files:
                    status, elapsed, n_pages = await post_pdf(client, server.url, path, args.mode)
                    if status != 200:
                        bad[str(status)] = bad.get(str(status), 0) + 1
                        continue
                    api_latencies.append(elapsed)
                    api_pages += n_pages
                saturation = None
                if args.saturate:
                    from bench.throughput import build_pdf

                    big = build_pdf(Path(tmp) / "saturate.pdf", 4 if args.quick else args.saturate_pages,
                                    [PDF_DIR / n for n in DENSE_PAGES])
                    uploads = 2 if args.quick else args.saturate
                    progress("saturation: %d concurrent uploads, /livez every %d ms", uploads, args.probe_interval_ms)
                    saturation = await saturate_and_probe(client, server.url, big, args.mode, uploads,
                                                          args.probe_interval_ms / 1000)
        finally:
            exit_code = server.stop()
    d_med = summary(direct["latency_s"])["median"]
    a_med = summary(api_latencies)["median"]
    doc["direct"] = {"latency_s": summary(direct["latency_s"]), "pages": direct["pages"],
                     "pages_per_s": round(direct["pages"] / sum(direct["latency_s"]), 3),
                     "warmup_s": round(direct["warmup_s"], 3)}
    doc["api"] = {"latency_s": summary(api_latencies), "pages": api_pages,
                  "pages_per_s": round(api_pages / sum(api_latencies), 3) if api_latencies else None,
                  "non_200": bad, "ready_after_s": round(ready_s, 2), "server_exit_code": exit_code}
    doc["overhead_ratio"] = round(a_med / d_med - 1, 4) if a_med and d_med else None
    doc["overhead_ms"] = round(1000 * (a_med - d_med), 2) if a_med and d_med else None
    doc["overhead_basis"] = "median API latency / median direct latency - 1 (sequential requests, same files)"
    if saturation is not None:
        doc["saturation"] = saturation
    return doc


async def baseline_comparison(args: argparse.Namespace, settings: Any, files: list[Path]) -> dict[str, Any]:
    """This checkout's server and `--baseline-root`'s side by side, requests alternating: p50 of each and the
    difference (the bar a change of the synchronous path is held to)."""
    root = Path(args.baseline_root).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        servers = [start_server(Path(tmp) / name, settings, path)
                   for name, path in (("ours", None), ("baseline", root))]
        for server in servers:
            server.workdir.mkdir()
            server.start()
        try:
            for server in servers:
                await asyncio.to_thread(server.wait_ready, READY_DEADLINE_S)
            async with httpx.AsyncClient() as client:
                for path in files[:4]:  # first requests pay imports and first-use costs on both sides
                    await post_pdf(client, servers[0].url, path, args.mode)
                    await post_pdf(client, servers[1].url, path, args.mode)
                progress("%d requests to each server, alternating", len(files))
                latencies = await paired_latencies(client, servers[0].url, servers[1].url, files, args.mode)
        finally:
            for server in servers:
                server.stop()
    ours, theirs = summary(latencies["api"]), summary(latencies["baseline"])
    return {
        "benchmark": "api_overhead", "mode": args.mode, "requests": len(files), "workers": settings.workers,
        "baseline_root": str(root), "api_latency_s": ours, "baseline_api_latency_s": theirs,
        "p50_delta_ms": round(1000 * (ours["median"] - theirs["median"]), 2)
        if ours["median"] and theirs["median"] else None,
        "basis": "median POST /ocr/pdf latency of this checkout minus the baseline's, same files, alternating",
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.api_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="auto", choices=["auto", "text", "ocr"])
    parser.add_argument("--requests", type=int, default=6, help="sequential requests each way")
    parser.add_argument("--limit", type=int, default=0, help="at most N requests each way")
    parser.add_argument("--quick", action="store_true", help="2 requests each way, a short saturation phase")
    parser.add_argument("--pdf", action="append", help="a PDF under the eval pdfs/ dir (repeatable)")
    parser.add_argument("--saturate", type=int, default=4, help="concurrent uploads during /livez probing; 0 = skip")
    parser.add_argument("--saturate-pages", type=int, default=16, help="pages in each saturating upload")
    parser.add_argument("--probe-interval-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, help="page workers (default: settings)")
    parser.add_argument("--threads", type=int, help="ONNX threads per worker (default: settings)")
    parser.add_argument("--baseline-root", help="another checkout (e.g. `git worktree add /tmp/base main`): its "
                        "server beside ours, requests alternating; reports both p50s (no direct or saturation phase)")
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(asyncio.run(main_async(build_parser().parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
