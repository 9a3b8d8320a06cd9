"""`python -m app doctor [--cpu-only]`: check this node before real work; one line per check (see app/doctor.py).

Prints `ok`, `skip` or `FAIL` and a detail for each check (FAIL lines on stderr) and exits 1 when any failed, 2 for
bad settings. The image build runs `--cpu-only` (models, OpenCV, the layout model on a blank page); on a GPU node
run it without, inside the running container, after /readyz (DEPLOY.md, "First start on a GPU node").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from app.commands import settings_from_env

DEFAULT_MIN_F1 = 0.9


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check models, layout, the VLM sidecar and one vl conversion",
                                   description="Check this node: one line per check, exit 1 if any failed.")
    parser.add_argument("--cpu-only", action="store_true",
                        help="only the checks that need no sidecar (models, OpenCV, layout): what the image build runs")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="how long to wait for the sidecar to answer (default 30)")
    parser.add_argument("--min-f1", type=float, default=DEFAULT_MIN_F1, metavar="F",
                        help=f"word F1 the warm-up page's vl reading must reach (default {DEFAULT_MIN_F1})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    settings = settings_from_env()
    if settings is None:
        return 2
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Any) -> int:
    from app.doctor import build_parts, run_checks

    parts = build_parts(settings)
    try:
        results = await run_checks(parts, cpu_only=args.cpu_only, timeout_s=args.timeout, min_f1=args.min_f1)
    finally:
        await parts.services.aclose(grace_s=0)
    for result in results:
        print(result.line(), file=sys.stderr if result.failed else sys.stdout, flush=True)
    return 1 if any(result.failed for result in results) else 0
