"""Run the benchmarks and print one JSON document (`make bench`).

    python -m bench.all            # the cheap set: eval facts (auto, text) + quick throughput/scan/API runs
    python -m bench.all --full     # every script at its full default size (tens of minutes on 2 cores)
    python -m bench.all --only olmocr,throughput

Each script runs in its own process (its own pool, nothing shared), one after another so none steals the others'
cores. A script that fails is reported with its exit code and stderr tail; the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench.common import emit, progress

# name -> (arguments for the cheap run, arguments for the full run)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "olmocr": (["--modes", "auto,text"], []),
    "throughput": (["--quick"], []),
    "scan_ocr": (["--quick"], []),
    "api_overhead": (["--quick"], []),
    "vlm_throughput": (["--quick"], []),
}


def run_script(name: str, extra: list[str], timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", f"bench.{name}", *extra], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timed out after {timeout_s:.0f}s", "stderr_tail": str(exc.stderr or "")[-800:]}
    elapsed = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode}", "seconds": elapsed, "stderr_tail": done.stderr[-1500:]}
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": "stdout was not JSON", "seconds": elapsed, "stdout_tail": done.stdout[-800:]}
    result["script_seconds"] = elapsed
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size runs instead of the cheap set")
    parser.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help=f"comma-separated subset of {','.join(SCRIPTS)}")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per script")
    args = parser.parse_args(argv)
    names = args.only or list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    document: dict[str, Any] = {"full": args.full, "results": {}}
    for name in names:
        cheap, full = SCRIPTS[name]
        progress("running bench.%s %s", name, " ".join(full if args.full else cheap))
        document["results"][name] = run_script(name, full if args.full else cheap, args.timeout_s)
    document["failed"] = [n for n, r in document["results"].items() if "error" in r]
    emit(document)
    return 1 if document["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
