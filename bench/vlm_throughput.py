"""VLM throughput: does `vl` mode keep the sidecar full? Prints one JSON document.

    python -m bench.vlm_throughput [--latency-ms 1000] [--capacity 16] [--regions 320] [--pages 20]
                                   [--concurrency 200,16,4] [--quick]

Starts the fake vLLM (tests/fakes/fake_vllm.py) with a fixed per-request latency L and capacity C (at most C
requests worked on at once, the rest queue, like vLLM's scheduler), so the best possible rate is C / L requests
per second. A many-region document (`--pages` pages x regions, as the parent process hands them over: every crop
of every page in one `VlRecognizer.recognize` call per page, all pages concurrently) goes through the real
VlmClient + VlRecognizer at each client concurrency bound (`vlm_max_concurrency`; 200 is what the official
PaddleX client keeps in flight). `ratio` = achieved rate / (C / L); the target is >= 0.9 at the default bound.
Layout and rendering are left out on purpose: on this machine's CPU they would hide the client's behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import emit, progress

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_CLIENT_CONCURRENCY = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _crop_jpeg() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 40), "white")
    ImageDraw.Draw(image).text((6, 12), "benchmark region", fill="black")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _crops(pages: int, per_page: int) -> list[list[Any]]:
    from app.pipeline.page import RegionCrop
    from app.pipeline.primitives import Region

    jpeg = _crop_jpeg()
    labels = ("text", "title", "table", "formula", "text")
    return [
        [RegionCrop(page_index=p, region=Region(label=labels[i % len(labels)], bbox=(0, i * 20, 200, i * 20 + 18)),
                    jpeg=jpeg) for i in range(per_page)]
        for p in range(pages)
    ]


async def _run_document(url: str, concurrency: int, pages: list[list[Any]]) -> dict[str, Any]:
    from app.settings import Settings
    from app.vlm.client import VlmClient
    from app.vlm.recognizer import VlRecognizer

    settings = Settings(_env_file=None, use_vlm_api=True, vllm_url=f"{url}/v1",  # type: ignore[call-arg]
                        vlm_max_concurrency=concurrency)
    client = VlmClient(settings)
    try:
        await client.wait_until_ready(60)
        before = httpx.get(f"{url}/fake/stats").json()
        recognizer = VlRecognizer(client, settings)
        started = time.perf_counter()
        results = await asyncio.gather(*(recognizer.recognize(crops) for crops in pages))
        elapsed = time.perf_counter() - started
        after = httpx.get(f"{url}/fake/stats").json()
    finally:
        await client.aclose()
    regions = sum(len(r) for r in results)
    assert all(region.text for page in results for region in page), "every region must come back read"
    return {"regions": regions, "seconds": round(elapsed, 3), "rate_rps": round(regions / elapsed, 1),
            "sidecar_requests": after["answered"] - before["answered"], "client_retries": client.counters["retries"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--regions", type=int, default=320)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--concurrency", default=f"{OFFICIAL_CLIENT_CONCURRENCY},16,4",
                        help="client bounds to try (vlm_max_concurrency); 200 = the official client")
    parser.add_argument("--quick", action="store_true", help="fewer regions (a smoke run)")
    args = parser.parse_args(argv)
    regions = 160 if args.quick else args.regions
    per_page = max(1, regions // args.pages)
    pages = _crops(args.pages, per_page)
    bound_rps = args.capacity / (args.latency_ms / 1000)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_vllm", "--port", str(port), "--answers", "echo",
         "--latency-ms", str(args.latency_ms), "--capacity", str(args.capacity)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if fake.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("fake vLLM did not start")
            time.sleep(0.1)
        for concurrency in (int(c) for c in args.concurrency.split(",") if c.strip()):
            progress("vlm throughput: %d regions, client bound %d, capacity %d, latency %.0f ms",
                     per_page * args.pages, concurrency, args.capacity, args.latency_ms)
            run = asyncio.run(_run_document(url, concurrency, pages))
            run["ratio_to_bound"] = round(run["rate_rps"] / bound_rps, 3)
            run["expected_bound_rps"] = round(min(concurrency, args.capacity) / (args.latency_ms / 1000), 1)
            runs[str(concurrency)] = run
    finally:
        fake.kill()
        fake.wait(10)
    default = runs.get(str(OFFICIAL_CLIENT_CONCURRENCY))
    emit({
        "benchmark": "vlm_throughput",
        "latency_ms": args.latency_ms,
        "capacity": args.capacity,
        "bound_rps": round(bound_rps, 1),
        "regions": per_page * args.pages,
        "pages": args.pages,
        "runs_by_client_concurrency": runs,
        "official_client_concurrency": OFFICIAL_CLIENT_CONCURRENCY,
        "meets_90pct_at_official_concurrency": bool(default and default["ratio_to_bound"] >= 0.9),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
