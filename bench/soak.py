"""A bounded soak of the real server: N clients for T seconds on loopback, overload included, probes timed.

    python -m bench.soak                          # 8 clients x 60 s, 2 workers, a small admission bound
    python -m bench.soak --clients 16 --seconds 120
    python -m bench.soak --quick                  # 4 clients x 15 s

The real server (`python -m app serve`, tests/server_process.py) runs with `--workers` page workers and
`MAX_PENDING_PAGES=--max-pending-pages`, so the clients keep every core converting and the admission queue full
(503 + Retry-After is the expected answer to most requests then). Each client posts, in turn, a scanned page in
`ocr` mode (CPU) and a multi-page born-digital PDF in `text` mode (upload, parsing, JSON); after a 503 it waits a
short moment (not the whole Retry-After: the point is to keep the queue full). Meanwhile:

- a prober GETs /livez every `--probe-interval-ms` on its own connection: p50/p99/max latency;
- the server's RSS (API process plus its page workers, read from /proc) is sampled every second: max, first and
  last, and the trend (least-squares slope over the second half of the run, MB/min) to show growth that stays.

Prints one JSON document: requests by status, 5xx, transport errors, RSS and probe figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import emit, percentile, progress
from tests import pdfgen
from tests.server_process import ServerProcess

READY_DEADLINE_S = 300.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """(RSS of the API process, RSS of it and every descendant) in MB."""
    total, stack, seen = 0.0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss_mb(current)
        stack += _children(current)
    return _rss_mb(pid), total


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 3:
        return None
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 60, 2)


def make_inputs(directory: Path) -> list[tuple[str, bytes, str]]:
    scan, _ = pdfgen.scanned_pdf(directory / "scan.pdf", dpi=150)
    text = pdfgen.text_pdf(directory / "text.pdf", pages=20)
    return [("scan.pdf", scan.read_bytes(), "ocr"), ("text.pdf", text.read_bytes(), "text")]


async def client_loop(url: str, inputs: list[tuple[str, bytes, str]], stop_at: float, counts: dict[str, int],
                      index: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        turn = index
        while time.monotonic() < stop_at:
            name, data, mode = inputs[turn % len(inputs)]
            turn += 1
            try:
                response = await client.post("/ocr/pdf", params={"mode": mode},
                                             files={"file": (name, data, "application/pdf")})
                key = str(response.status_code)
            except httpx.HTTPError as exc:
                key = f"transport:{type(exc).__name__}"
                response = None
            counts[key] = counts.get(key, 0) + 1
            if response is not None and response.status_code == 503:
                await asyncio.sleep(0.2)


def probe_process(url: str, seconds: float, interval_s: float, out: Any) -> None:
    """GET /livez every `interval_s` for `seconds` on one keep-alive connection; send back (latencies, failures).

    A process of its own: timed inside the load generator, a probe would also measure that process's own busy
    event loop, not only the server's."""
    latencies, failures = [], []
    stop_at = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                response = client.get("/livez")
                if response.status_code != 200:
                    failures.append(str(response.status_code))
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t0)
            time.sleep(max(0.0, interval_s - (time.perf_counter() - t0)))
    out.send((latencies, failures))
    out.close()


async def sampler(pid: int, started: float, stop_at: float, samples: list[tuple[float, float, float]]) -> None:
    while time.monotonic() < stop_at:
        api, total = tree_rss_mb(pid)
        samples.append((time.monotonic() - started, api, total))
        await asyncio.sleep(1.0)


async def soak(args: argparse.Namespace, server: ServerProcess, inputs: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    assert server.proc is not None
    started = time.monotonic()
    stop_at = started + args.seconds
    counts: dict[str, int] = {}
    rss: list[tuple[float, float, float]] = []
    context = mp.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    probe = context.Process(target=probe_process, args=(server.url, args.seconds, args.probe_interval_ms / 1000,
                                                        sending))
    probe.start()
    await asyncio.gather(
        *(client_loop(server.url, inputs, stop_at, counts, i) for i in range(args.clients)),
        sampler(server.proc.pid, started, stop_at, rss),
    )
    latencies, probe_failures = await asyncio.to_thread(receiving.recv)
    probe.join(timeout=30)
    second_half = [(t, total) for t, _, total in rss if t >= args.seconds / 2]
    ms = [v * 1000 for v in latencies]
    return {
        "requests": dict(sorted(counts.items())),
        "requests_total": sum(counts.values()),
        "server_errors_5xx": sum(n for k, n in counts.items() if k.isdigit() and k.startswith("5") and k != "503"),
        "overloaded_503": counts.get("503", 0),
        "transport_errors": sum(n for k, n in counts.items() if k.startswith("transport:")),
        "rss_mb": {
            "max_total": round(max((s[2] for s in rss), default=0.0), 1),
            "max_api": round(max((s[1] for s in rss), default=0.0), 1),
            "first_total": round(rss[0][2], 1) if rss else None,
            "last_total": round(rss[-1][2], 1) if rss else None,
            "trend_second_half_mb_per_min": slope_mb_per_min(second_half),
        },
        "livez_ms": {
            "n": len(ms),
            "p50": round(percentile(ms, 0.5) or 0.0, 1),
            "p99": round(percentile(ms, 0.99) or 0.0, 1),
            "max": round(max(ms, default=0.0), 1),
            "failures": len(probe_failures),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-pending-pages", type=int, default=8, help="admission bound (small: overload)")
    parser.add_argument("--probe-interval-ms", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="4 clients x 15 s")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server (repeatable), e.g. PYTHONASYNCIODEBUG=1")
    parser.add_argument("--server-log", type=Path, help="copy the server's log here afterwards")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 4, 15.0

    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        workdir = Path(tmp)
        inputs = make_inputs(workdir)
        server = ServerProcess(workdir / "server", {
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "WORKERS": str(args.workers),
            "MAX_PENDING_PAGES": str(args.max_pending_pages),
            "MAX_SYNC_WAIT_S": "3600",  # the synchronous path only, no hand-off to jobs
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "false",
            **dict(item.split("=", 1) for item in args.server_env),
        })
        server.workdir.mkdir()
        server.start()
        try:
            ready_s = server.wait_ready(READY_DEADLINE_S)
            progress("server ready in %.1fs; %d clients x %.0fs", ready_s, args.clients, args.seconds)
            result = asyncio.run(soak(args, server, inputs))
        finally:
            server.stop()
            if args.server_log:
                shutil.copyfile(server.log_path, args.server_log)
    emit({
        "bench": "soak",
        "config": {"clients": args.clients, "seconds": args.seconds, "workers": args.workers,
                   "max_pending_pages": args.max_pending_pages, "probe_interval_ms": args.probe_interval_ms,
                   "inputs": [f"{name} ({mode}, {len(data)} bytes)" for name, data, mode in inputs]},
        **result,
    })


if __name__ == "__main__":
    main()
