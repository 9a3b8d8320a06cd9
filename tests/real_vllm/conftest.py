"""The real-vLLM tier: PyPI's vLLM CPU build serving a tiny random-weight PaddleOCR-VL, started by the real
supervisord from this repo's supervisord.conf (its own `vlm` command line, plus start.sh's `VLM_DEVICE=cpu`
profile), with the API beside it, as in the GPU image.

Runs with `make test-vllm` (part of `make test`), which builds the tier's own virtualenv (REAL_VLLM_VENV,
scripts/vllm_cpu_env.sh). Skipped, with one line saying why, when that virtualenv could not be built on this
machine (no torch+cpu wheel, no Python 3.11, no AVX2) or when pytest runs without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.models_manifest import VLM_MODEL
from tests.integration.test_supervisord import Appliance
from tests.server_process import ROOT, wait_until

# Under CI load vLLM's first start takes 45-160 s (eager mode, 2 cores); its restart after kill -9 as long.
VLLM_START_S = 420.0
MAX_TOKENS = 8  # the tiny model never stops by itself: every answer is exactly this long


def tier_venv() -> Path:
    configured = os.environ.get("REAL_VLLM_VENV", "")
    return (ROOT / configured).resolve() if configured and not Path(configured).is_absolute() else Path(configured)


def skip_reason() -> str | None:
    """Why this tier cannot run here (one line), or None. The test module skips itself, once, with it."""
    if not os.environ.get("REAL_VLLM_VENV"):
        return "the real-vLLM tier runs with `make test-vllm` (REAL_VLLM_VENV unset)"
    reason = tier_venv() / "UNAVAILABLE"
    if reason.exists():
        return f"real-vLLM tier skipped: {reason.read_text().strip()}"
    return None


def build_models(venv: Path, home: Path) -> Path:
    """PADDLEX_HOME with the tiny checkpoint, its chat template and a manifest (the layout model is a placeholder:
    this tier uses the CDLA layout engine)."""
    from app.models_manifest import LAYOUT_MODEL, VLM_MODEL, ModelSource, write_manifest

    models = home / "official_models"
    subprocess.run([str(venv / "bin" / "python"), str(ROOT / "scripts" / "build_tiny_paddleocr_vl.py"),
                    str(models / VLM_MODEL), str(home / "chat_templates" / f"{VLM_MODEL}.jinja"), VLM_MODEL],
                   check=True, capture_output=True, timeout=300)
    (models / LAYOUT_MODEL).mkdir(parents=True, exist_ok=True)
    (models / LAYOUT_MODEL / "inference.yml").write_text("placeholder: the CDLA layout engine runs in this tier\n")
    write_manifest(models, [ModelSource(name=n, repo_id="test/tiny", revision="0") for n in (VLM_MODEL, LAYOUT_MODEL)])
    return home


class RealAppliance(Appliance):
    """The appliance with the real vLLM as its `vlm` program (no VLM_COMMAND)."""

    def __init__(self, tmp: Path, venv: Path, home: Path) -> None:
        super().__init__(tmp, profile="gpu")
        self.venv = venv
        self.env.update({
            # the API's python3 first, then the vLLM venv's `vllm`
            "PATH": f"{Path(sys.executable).parent}:{venv / 'bin'}:/usr/bin:/bin",
            "PADDLEX_HOME": str(home),
            "VLM_COMMAND": "",
            "VLM_MODEL_NAME": VLM_MODEL,  # the image's default: PaddleOCR-VL-1.6-0.9B, with its chat template
            "VLM_DEVICE": "cpu",
            # vLLM must never see this (it would take it as the base of its internal ports): set to the API's port
            "VLLM_PORT": str(self.api_port),
            "VLM_MAX_COMPLETION_TOKENS": str(MAX_TOKENS),
            "VLM_STARTSECS": "5",
            "VLM_STARTUP_TIMEOUT_S": str(int(VLLM_START_S)),
            "VLM_PROBE_INTERVAL_S": "1",
            "VLLM_CACHE_ROOT": str(tmp / "vllm-cache"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "MAX_SYNC_WAIT_S": "300",
        })

    def wait_ready(self, timeout_s: float = VLLM_START_S) -> None:
        wait_until(lambda: self.alive() and self.status("/readyz") == 200, timeout_s,
                   f"readiness with the real vLLM\n{self.log()[-4000:]}", 1.0)

    def vllm_metric(self, name: str) -> float:
        """Sum of one vLLM Prometheus counter over its label sets."""
        text = httpx.get(f"{self.vlm_url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAppliance]:
    venv = tier_venv()
    if not (venv / "bin" / "vllm").exists():
        pytest.fail(f"{venv} has no vllm: run `make test-vllm` (scripts/vllm_cpu_env.sh) to build it")
    tmp = tmp_path_factory.mktemp("real-vllm")
    home = build_models(venv, tmp / "tiny-paddlex")
    appliance = RealAppliance(tmp, venv, home).start()
    started = time.monotonic()
    try:
        appliance.wait_ready()
        appliance.started_in_s = time.monotonic() - started
        print(f"\nreal vLLM appliance ready in {appliance.started_in_s:.0f}s")
        yield appliance
    finally:
        appliance.stop()
