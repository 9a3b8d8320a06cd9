"""Should a synchronous conversion simply be a job the route waits on (one path, the 202 for free)? What it costs.

    python -m bench.sync_as_job                      # 30 rounds, text mode, a one-page born-digital PDF
    python -m bench.sync_as_job --rounds 60 --mode auto

In one process, on one warm pool, alternating round by round (so both sides see the same machine):
1. sync: the conversion service's path for a call someone waits on (`convert_request`: inspect, admit, convert,
   result written under OUTPUT_DIR, the result in hand);
2. job: what the route would do instead: `JobManager.submit` (digest, durable input, a row in the SQLite store),
   the runner (checkpoint per page, merge, result files, `succeeded`), wait for it, then read result.json back to
   answer with it.
Both start from a copy of the file in the uploads directory (the upload itself is the same either way and is not
timed). `extra_ms` is the median job latency minus the median sync latency: what sync-as-a-job would add to p50.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PDF_DIR, bench_settings, emit, progress, summary


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from app.api.upload import uploads_dir
    from app.conversion.service import convert_request
    from app.conversion.source import SourceFile
    from app.pipeline.options import ConvertOptions
    from app.pipeline.result import DocumentResult
    from app.services import build_services

    pdf = PDF_DIR / args.pdf
    with tempfile.TemporaryDirectory(prefix="bench-sync-job-") as tmp:
        settings = bench_settings(workers=args.workers, threads_per_worker=args.threads, output_dir=Path(tmp),
                                  max_sync_wait_s=3600)
        services = build_services(settings, jobs=True)
        assert services.jobs is not None
        options = ConvertOptions(mode=args.mode, images="none")
        services.pool.start()
        await services.pool.warmup()
        await services.jobs.start(sweep=False)
        scratch = uploads_dir(settings)

        def upload(name: str) -> Path:
            target = scratch / f"{name}.pdf"
            shutil.copyfile(pdf, target)
            return target

        async def sync_once(i: int) -> float:
            path = upload(f"sync-{i}")
            t0 = time.perf_counter()
            outcome = await convert_request(services, SourceFile(path, path.stat().st_size, pdf.name), options,
                                            request_id=f"sync-{i}", owner="")
            elapsed = time.perf_counter() - t0
            assert outcome.result.pages, outcome  # type: ignore[union-attr]
            return elapsed

        async def job_once(i: int) -> float:
            jobs = services.jobs
            assert jobs is not None
            path = upload(f"job-{i}")
            t0 = time.perf_counter()
            job = await jobs.submit(path, options, owner="")
            await jobs.wait(job.id, 600)
            done = await jobs.get(job.id, "")
            assert done.status == "succeeded", done
            json_path, _ = await jobs.result_paths(done)
            result = DocumentResult.model_validate_json(await asyncio.to_thread(json_path.read_bytes))
            elapsed = time.perf_counter() - t0
            assert result.pages
            return elapsed

        try:
            for i in range(args.warmup):  # first calls pay imports and first-use costs on both sides
                await sync_once(-1 - i)
                await job_once(-1 - i)
            sync_s: list[float] = []
            job_s: list[float] = []
            progress("%d rounds, sync and job alternating", args.rounds)
            for i in range(args.rounds):
                first, second = (sync_once, job_once) if i % 2 == 0 else (job_once, sync_once)
                for run in (first, second):
                    (sync_s if run is sync_once else job_s).append(await run(i))
        finally:
            await services.aclose(10.0)
    sync_med, job_med = summary(sync_s)["median"], summary(job_s)["median"]
    return {
        "benchmark": "sync_as_job",
        "pdf": args.pdf,
        "mode": args.mode,
        "rounds": args.rounds,
        "workers": settings.workers,
        "sync_latency_s": summary(sync_s),
        "job_latency_s": summary(job_s),
        "extra_ms": round(1000 * (job_med - sync_med), 2) if sync_med and job_med else None,
        "basis": "median job (submit, run, wait, read result.json) minus median sync (convert_request)",
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_as_job", description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", default="multi_column_miss.pdf", help="a one-page PDF under the eval pdfs/ dir")
    parser.add_argument("--mode", default="text", choices=["auto", "text", "ocr"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    emit(asyncio.run(main_async(build_parser().parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
