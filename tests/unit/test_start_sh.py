"""start.sh's environment contract, with stand-ins for `supervisord` and `vllm` on PATH that record what they got."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORDER = """#!/usr/bin/env bash
{ echo "ARGS $*"; env; } > "$RECORD"
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("supervisord", "vllm"):
        (path / name).write_text(RECORDER)
        (path / name).chmod(0o755)
    return path


def start(tmp_path: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """start.sh with the stand-ins on PATH, in a scratch HOME, with `env` added."""
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "OUTPUT_DIR": str(tmp_path / "out"),
            "TMPDIR": str(tmp_path), "RECORD": str(tmp_path / "record.txt")}
    return subprocess.run(["bash", str(ROOT / "start.sh"), *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=30)


def run(tmp_path: Path, bin_dir: Path, *args: str, **env: str) -> tuple[str, dict[str, str]]:
    """start.sh that succeeds: the first line the stand-in recorded (its arguments) and the environment it got."""
    result = start(tmp_path, bin_dir, *args, **env)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "record.txt").read_text().splitlines()
    recorded = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    return lines[0], recorded


def baked_model(tmp_path: Path, vlm: str = "PaddleOCR-VL-1.6-0.9B") -> Path:
    """A PADDLEX_HOME holding the VLM's directory, as the gpu image bakes it (no chat template yet)."""
    home = tmp_path / "paddlex"
    (home / "official_models" / vlm).mkdir(parents=True)
    (home / "official_models" / vlm / "config.json").write_text("{}")
    return home


def test_the_sidecar_port_comes_from_vllm_url_and_vllm_port_is_left_alone(tmp_path, bin_dir):
    _, env = run(tmp_path, bin_dir, PROFILE="cpu", VLLM_PORT="9999")
    assert env["SIDECAR_PORT"] == "8080"  # the image's VLLM_URL default
    _, env = run(tmp_path, bin_dir, PROFILE="cpu", VLLM_URL="http://127.0.0.1:18080/v1")
    assert env["SIDECAR_PORT"] == "18080"
    assert "VLLM_PORT" not in env  # start.sh itself never invents one


def test_vllm_never_sees_vllm_port(tmp_path, bin_dir):
    args, env = run(tmp_path, bin_dir, "vllm", "serve", "/models/x", "--port", "8080", VLLM_PORT="8081")
    assert args == "ARGS serve /models/x --port 8080"
    assert "VLLM_PORT" not in env
    assert "VLLM_TARGET_DEVICE" not in env  # the gpu profile adds nothing


# The VLLM_* names vLLM may see: its own (vllm/envs.py's environment_variables), set by the image (Dockerfile.vllm)
# or by start.sh's cpu profile. tests/real_vllm checks them against the real vLLM's list.
VLLM_OWN_NAMES = {"VLLM_CACHE_ROOT", "VLLM_NO_USAGE_STATS", "VLLM_TARGET_DEVICE", "VLLM_CPU_KVCACHE_SPACE"}


def test_vllm_sees_none_of_our_vllm_named_settings(tmp_path, bin_dir):
    """Our settings named VLLM_* (VLLM_URL, the supervisord.conf tunables, VLLM_EXTRA_ARGS) stay out of vLLM's
    environment, where vLLM 0.32 warns about every VLLM_* name it does not know; vLLM's own names pass through."""
    image = {"VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"), "VLLM_NO_USAGE_STATS": "1"}
    operator = {"VLLM_URL": "http://127.0.0.1:8080/v1", "VLLM_EXTRA_ARGS": "--max-num-seqs 8",
                "VLLM_PORT": "tcp://10.0.0.9:8080", "VLLM_MAX_NUM_SEQS": "128"}
    # The environment supervisord hands its programs: what start.sh exported, every tunable included.
    _, supervised = run(tmp_path, bin_dir, PROFILE="cpu", **image, **operator)
    ours = {name for name in supervised if name.startswith("VLLM_")} - VLLM_OWN_NAMES
    referenced = set(re.findall(r"%\(ENV_(VLLM_\w+)\)s", (ROOT / "supervisord.conf").read_text()))
    assert referenced and referenced <= ours and "VLLM_URL" in ours and "VLLM_EXTRA_ARGS" in ours
    for device in ("gpu", "cpu"):
        args, env = run(tmp_path, bin_dir, "vllm", "serve", "/m", **{**supervised, "VLM_DEVICE": device})
        assert args.endswith("--max-num-seqs 8")  # VLLM_EXTRA_ARGS still reaches the command line
        seen = {name for name in env if name.startswith("VLLM_")}
        assert seen <= VLLM_OWN_NAMES, sorted(seen - VLLM_OWN_NAMES)
        assert seen >= set(image)


def test_the_cpu_device_profile_appends_its_flags_before_the_operators(tmp_path, bin_dir):
    args, env = run(tmp_path, bin_dir, "vllm", "serve", "/m", VLM_DEVICE="cpu", VLLM_EXTRA_ARGS="--max-num-seqs 8")
    assert args == "ARGS serve /m --enforce-eager --no-trust-remote-code --api-server-count 1 --max-num-seqs 8"
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_the_fake_sidecar_gets_its_port_under_our_own_name(tmp_path, bin_dir):
    record = tmp_path / "record.txt"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "VLLM_URL": "http://127.0.0.1:18555/v1",
           "VLM_COMMAND": f"echo port=$SIDECAR_PORT vllm_port=${{VLLM_PORT:-unset}} > {record}", "VLLM_PORT": "1"}
    subprocess.run(["bash", str(ROOT / "start.sh"), "vllm", "serve"], env=env, check=True, timeout=30)
    assert record.read_text().strip() == "port=18555 vllm_port=unset"


def test_a_bad_vlm_device_is_refused_with_one_line(tmp_path, bin_dir):
    result = subprocess.run(["bash", str(ROOT / "start.sh"), "vllm", "serve"], capture_output=True, text=True,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "VLM_DEVICE": "tpu"}, timeout=30)
    assert result.returncode != 0 and result.stderr.strip() == "start.sh: VLM_DEVICE must be 'gpu' or 'cpu', got 'tpu'"


def test_gpu_profile_needs_the_chat_template(tmp_path, bin_dir):
    home = baked_model(tmp_path)
    result = start(tmp_path, bin_dir, PROFILE="gpu", PADDLEX_HOME=str(home))
    assert result.returncode != 0
    assert result.stderr.strip().startswith("start.sh: PROFILE=gpu but the chat template")
    (home / "chat_templates").mkdir()
    (home / "chat_templates" / "PaddleOCR-VL-1.6-0.9B.jinja").write_text("{{ messages }}")
    _, env = run(tmp_path, bin_dir, PROFILE="gpu", PADDLEX_HOME=str(home))
    assert env["VLM_CHAT_TEMPLATE"] == f"{home}/chat_templates/PaddleOCR-VL-1.6-0.9B.jinja"
    assert env["VLM_MODEL_NAME"] == "PaddleOCR-VL-1.6-0.9B"
    assert env["VLLM_API_SERVER_COUNT"] == "4" and env["VLM_STARTSECS"] == "300"


def test_the_served_vlm_names_its_model_dir_and_chat_template(tmp_path, bin_dir):
    # An image built with --build-arg VLM_MODEL=PaddleOCR-VL-0.9B sets VLM_MODEL_NAME so; start.sh follows it.
    home = baked_model(tmp_path, "PaddleOCR-VL-0.9B")
    (home / "chat_templates").mkdir()
    (home / "chat_templates" / "PaddleOCR-VL-0.9B.jinja").write_text("{{ messages }}")
    _, env = run(tmp_path, bin_dir, PROFILE="gpu", PADDLEX_HOME=str(home), VLM_MODEL_NAME="PaddleOCR-VL-0.9B")
    assert env["VLM_CHAT_TEMPLATE"] == f"{home}/chat_templates/PaddleOCR-VL-0.9B.jinja"
    result = start(tmp_path, bin_dir, PROFILE="gpu", PADDLEX_HOME=str(home))  # the default model is not baked here
    assert result.returncode != 0 and "official_models/PaddleOCR-VL-1.6-0.9B is missing" in result.stderr


def test_gpu_profile_refuses_a_sidecar_url_off_loopback(tmp_path, bin_dir):
    home = baked_model(tmp_path)
    result = start(tmp_path, bin_dir, PROFILE="gpu", PADDLEX_HOME=str(home), VLLM_URL="http://vllm.example:8080/v1")
    assert result.returncode != 0 and "must point at the sidecar on 127.0.0.1" in result.stderr
