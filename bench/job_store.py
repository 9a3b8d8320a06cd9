"""The cost of sharing jobs between replicas: the same one-page `text` jobs through one real server with the embedded
SQLite store, then with PostgreSQL page leases (a real PostgreSQL and a moto S3 server, both on loopback; both runs
copy inputs and results to the same S3), in one run.

Prints pages/s of each, their ratio (PostgreSQL over SQLite), and job latency (submit to `succeeded`) p50/p99.

    python -m bench.job_store [--jobs 50 --concurrency 8 --rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import emit, progress
from tests import pdfgen
from tests.postgres_server import PostgresServer
from tests.server_process import ServerProcess, free_port, wait_until


def _moto() -> tuple[subprocess.Popen, str]:
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            httpx.get(url, timeout=1)
            return True
        except httpx.TransportError:
            return False

    wait_until(up, 60, "moto_server")
    return proc, url


def _run_jobs(server: ServerProcess, pdf: Path, jobs: int, concurrency: int) -> dict[str, float]:
    client = httpx.Client(base_url=server.url, timeout=120)

    def one(_: int) -> float:
        started = time.perf_counter()
        with pdf.open("rb") as fh:
            answer = client.post("/jobs", files={"file": ("one.pdf", fh, "application/pdf")}, data={"mode": "text"})
        answer.raise_for_status()
        job_id = answer.json()["job_id"]
        while client.get(f"/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
            time.sleep(0.02)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        latencies = sorted(executor.map(one, range(jobs)))
    wall = time.perf_counter() - started
    client.close()
    return {
        "pages_per_s": round(jobs / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per backend (load varies)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-jobstore-"))
    pdf = pdfgen.text_pdf(scratch / "one.pdf", pages=1)
    postgres = PostgresServer().start()
    moto, s3_url = _moto()
    import boto3

    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgres": []}
    try:
        for round_ in range(args.rounds):
            for backend in ("sqlite", "postgres"):
                # Both with the same S3 (inputs and results are copied there either way), so the difference is the
                # coordination: SQLite on local disk against PostgreSQL leases.
                bucket = "bench-" + uuid.uuid4().hex[:8]
                boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="b",
                             aws_secret_access_key="b").create_bucket(Bucket=bucket)
                env = {"WORKERS": "2", "S3_ENDPOINT": s3_url, "S3_BUCKET": bucket, "S3_ACCESS_KEY": "b",
                       "S3_SECRET_KEY": "b"}
                if backend == "postgres":
                    env["JOBS_DATABASE_URL"] = postgres.url
                workdir = scratch / f"{backend}{round_}"
                workdir.mkdir()
                server = ServerProcess(workdir, env).start()
                try:
                    server.wait_ready()
                    progress("round %d: %s", round_ + 1, backend)
                    results[backend].append(_run_jobs(server, pdf, args.jobs, args.concurrency))
                finally:
                    server.stop()
    finally:
        postgres.stop()
        moto.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    def best(rows: list[dict[str, float]]) -> dict[str, float]:
        return max(rows, key=lambda row: row["pages_per_s"])

    sqlite, shared = best(results["sqlite"]), best(results["postgres"])
    emit({
        "jobs": args.jobs, "concurrency": args.concurrency, "rounds": results,
        "sqlite": sqlite, "postgres": shared,
        "postgres_over_sqlite_pages_per_s": round(shared["pages_per_s"] / sqlite["pages_per_s"], 3),
        "target": "postgres_over_sqlite_pages_per_s >= 0.95",
    })


if __name__ == "__main__":
    main()
