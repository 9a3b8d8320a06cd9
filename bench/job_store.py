"""The cost of sharing jobs between replicas: the same one-page `text` jobs through one real server with the embedded
SQLite store, then with PostgreSQL page leases (a real PostgreSQL and a moto S3 server, both on loopback; both runs
copy inputs and results to the same S3), in one run.

Prints pages/s of each (the median over rounds), their ratio (PostgreSQL over SQLite), and job latency (submit to
`succeeded`) p50/p99.

`--tree LABEL=DIR` (repeatable) runs the server of another checkout too (e.g. `git archive fbffdb9 | tar -x -C DIR`),
in the same alternating rounds, against a fresh PostgreSQL database per server run: the store before and after a
change, measured close together on one (possibly shared) machine, with each backend's ratio this tree over that one.

    python -m bench.job_store [--jobs 50 --concurrency 8 --rounds 2] [--tree base=/tmp/base]
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
from tests.postgres_server import PostgresServer, fresh_database
from tests.server_process import ROOT, ServerProcess, free_port, wait_until

THIS_TREE = "this"


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


def _tree(text: str) -> tuple[str, Path]:
    label, _, directory = text.partition("=")
    if not directory or not (Path(directory) / "app").is_dir() or label == THIS_TREE:
        raise argparse.ArgumentTypeError(f"want LABEL=DIR of a checkout with app/ (LABEL not {THIS_TREE!r}): {text}")
    return label, Path(directory).resolve()


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over the rounds (the machine may be shared: one slow round moves no figure)."""
    return {key: round(statistics.median(row[key] for row in rows), 3) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per backend (load varies)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append",
                        help="only this backend (repeatable; default both)")
    parser.add_argument("--tree", type=_tree, action="append", default=[], metavar="LABEL=DIR",
                        help="also run the server of this checkout, in the same rounds")
    args = parser.parse_args()
    trees = {THIS_TREE: ROOT, **dict(args.tree)}

    scratch = Path(tempfile.mkdtemp(prefix="bench-jobstore-"))
    pdf = pdfgen.text_pdf(scratch / "one.pdf", pages=1)
    postgres = PostgresServer().start()
    moto, s3_url = _moto()
    import asyncio

    import boto3

    backends = args.backend or ["sqlite", "postgres"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {t: {b: [] for b in backends} for t in trees}
    try:
        for round_ in range(args.rounds):
            for backend in backends:
                for label, tree in trees.items():
                    # Both with the same S3 (inputs and results are copied there either way), so the difference is
                    # the coordination: SQLite on local disk against PostgreSQL leases.
                    bucket = "bench-" + uuid.uuid4().hex[:8]
                    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="b",
                                 aws_secret_access_key="b").create_bucket(Bucket=bucket)
                    env = {"WORKERS": "2", "S3_ENDPOINT": s3_url, "S3_BUCKET": bucket, "S3_ACCESS_KEY": "b",
                           "S3_SECRET_KEY": "b", "PYTHONPATH": str(tree)}
                    if backend == "postgres":
                        # A database of its own: each tree's schema as it makes it, no rows of an earlier run.
                        env["JOBS_DATABASE_URL"] = asyncio.run(fresh_database(postgres.url))
                    workdir = scratch / f"{label}-{backend}{round_}"
                    workdir.mkdir()
                    server = ServerProcess(workdir, env).start()
                    try:
                        server.wait_ready()
                        progress("round %d: %s %s", round_ + 1, label, backend)
                        results[label][backend].append(_run_jobs(server, pdf, args.jobs, args.concurrency))
                    finally:
                        server.stop()
    finally:
        postgres.stop()
        moto.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {label: {backend: _median(rows) for backend, rows in by_backend.items()}
               for label, by_backend in results.items()}
    ours = medians[THIS_TREE]
    emit({
        "jobs": args.jobs, "concurrency": args.concurrency, "rounds": results, "medians": medians, **ours,
        "postgres_over_sqlite_pages_per_s": round(ours["postgres"]["pages_per_s"] / ours["sqlite"]["pages_per_s"], 3)
        if len(ours) == 2 else None,
        "this_over_tree_pages_per_s": {
            label: {backend: round(medians[THIS_TREE][backend]["pages_per_s"] / row["pages_per_s"], 3)
                    for backend, row in by_backend.items()}
            for label, by_backend in medians.items() if label != THIS_TREE
        },
        "target": "postgres_over_sqlite_pages_per_s >= 0.95",
    })


if __name__ == "__main__":
    main()
