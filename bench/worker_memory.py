"""Page workers' resident memory under load, with and without the memory bounds, on the same load in one run.

    python -m bench.worker_memory                  # every eval PDF in `ocr` and `auto` mode, 2 workers
    python -m bench.worker_memory --quick          # 4 PDFs
    python -m bench.worker_memory --rounds 2 --concurrency 4 --workers 2

Two configurations of the real PagePool convert the same documents (eval PDFs at `--dpi`, `--concurrency`
documents at a time, `--rounds` passes, each mode in turn):

- `unbounded`: what the service did before: ONNX Runtime's CPU memory arena on, idle workers never trim their
  heap, workers never replaced;
- `bounded`: the defaults (`ONNX_MEMORY_ARENA=false`, idle heap trim, `WORKER_MAX_PAGES`, `WORKER_MAX_RSS_MB`).

For each: the workers' RSS (MB, read from /proc every 0.2 s, summed over the workers and for the largest one) once
warm, at its peak under load, and a few seconds after the load ended (what an idle service keeps), pages/s, and
how many workers were replaced. `bounded_vs_unbounded` gives the ratios (RSS and throughput) of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import PDF_DIR, bench_settings, convert, emit, progress

CONFIGS: dict[str, dict[str, Any]] = {
    "unbounded": {"settings": {"onnx_memory_arena": True, "worker_max_pages": 0, "worker_max_rss_mb": 0},
                  "trim_idle_heap": False},
    "bounded": {"settings": {}, "trim_idle_heap": True},
}
SAMPLE_S = 0.2
IDLE_S = 3.0


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Sampler:
    """Samples the pool's workers' RSS in a thread: the sum over workers and the largest worker, each sample."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> tuple[float, float]:
        values = [v for v in (_rss_mb(pid) for pid in self._pool.worker_pids()) if v is not None]
        return (sum(values), max(values, default=0.0))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.now())
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _run_config(name: str, config: dict[str, Any], pdfs: list[Path], args: argparse.Namespace) -> dict:
    from app.runtime.pool import PagePool

    settings = bench_settings(workers=args.workers, **config["settings"])
    pool = PagePool(settings, trim_idle_heap=config["trim_idle_heap"])
    pool.start()
    try:
        warmup_s = await pool.warmup()
        sampler = _Sampler(pool)
        await asyncio.sleep(IDLE_S)
        warm = sampler.now()
        gate = asyncio.Semaphore(args.concurrency)
        pages = failed = 0

        async def one(path: Path, mode: str) -> None:
            nonlocal pages, failed
            async with gate:
                try:
                    result = await convert(pool, path, mode, dpi=args.dpi)
                    pages += len(result.pages)
                except Exception as exc:  # noqa: BLE001 - a refused eval file counts, it does not stop the bench
                    failed += 1
                    progress("%s: %s %s failed: %s", name, mode, path.name, exc)

        started = time.perf_counter()
        with sampler:
            for _ in range(args.rounds):
                for mode in args.modes.split(","):
                    await asyncio.gather(*(one(path, mode) for path in pdfs))
                    progress("%s: %s done, %d pages so far, RSS now %.0f MB", name, mode, pages, sampler.now()[0])
        seconds = time.perf_counter() - started
        await asyncio.sleep(IDLE_S)
        idle = sampler.now()
        stats = pool.stats()
    finally:
        await pool.stop(grace_s=10.0)
    peak_sum = max((s[0] for s in sampler.samples), default=warm[0])
    peak_one = max((s[1] for s in sampler.samples), default=warm[1])
    return {
        "settings": {**config["settings"], "trim_idle_heap": config["trim_idle_heap"]},
        "warmup_s": round(warmup_s, 2),
        "pages": pages,
        "failed_documents": failed,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 3) if seconds else None,
        "rss_mb": {
            "warm_total": round(warm[0]), "warm_per_worker_max": round(warm[1]),
            "peak_total": round(peak_sum), "peak_per_worker_max": round(peak_one),
            "idle_after_total": round(idle[0]), "idle_after_per_worker_max": round(idle[1]),
        },
        "samples": len(sampler.samples),
        "worker_recycles": stats.worker_recycles,
        "worker_restarts": stats.worker_restarts,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="ocr,auto")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="documents converting at once")
    parser.add_argument("--quick", action="store_true", help="4 PDFs instead of every eval PDF")
    args = parser.parse_args()
    pdfs = sorted(PDF_DIR.rglob("*.pdf"))
    if args.quick:
        pdfs = pdfs[:4]
    if not pdfs:
        raise SystemExit(f"no eval PDFs under {PDF_DIR} (set BENCH_EVAL_DIR)")
    progress("%d PDFs x %s, %d round(s), %d workers, concurrency %d", len(pdfs), args.modes, args.rounds,
             args.workers, args.concurrency)
    results = {}
    for name, config in CONFIGS.items():
        results[name] = await _run_config(name, config, pdfs, args)
        progress("%s: %s", name, results[name]["rss_mb"])
    before, after = results["unbounded"], results["bounded"]
    emit({
        "bench": "worker_memory",
        "load": {"pdfs": len(pdfs), "modes": args.modes, "dpi": args.dpi, "rounds": args.rounds,
                 "workers": args.workers, "concurrency": args.concurrency},
        **results,
        "bounded_vs_unbounded": {
            **{key: _ratio(after["rss_mb"][key], before["rss_mb"][key]) for key in after["rss_mb"]},
            "pages_per_s": _ratio(after["pages_per_s"], before["pages_per_s"]),
        },
    })


if __name__ == "__main__":
    asyncio.run(main())
