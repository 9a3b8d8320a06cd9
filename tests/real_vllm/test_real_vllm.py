"""The appliance on the real vLLM (CPU build, tiny random-weight PaddleOCR-VL): launch contract, `vl` mode end to
end, the client's error paths on real answers, `doctor`, and faults on the real process. Tests run in file order
on one appliance (one vLLM start); the last one stops it."""

from __future__ import annotations

import ast
import asyncio
import base64
import configparser
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.errors import SidecarFailed
from app.models_manifest import VLM_MODEL
from app.settings import Settings
from app.vlm.client import VlmClient
from app.vlm.prompts import MAX_PIXELS, MIN_PIXELS, chat_request
from tests import pdfgen
from tests.real_vllm.conftest import MAX_TOKENS, VLLM_START_S, skip_reason
from tests.server_process import ROOT, assert_served_or_shed, wait_until

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)

MODEL = VLM_MODEL  # PaddleOCR-VL-1.6-0.9B, served with its 1.6 chat template
PATCH_PIXELS = 28 * 28  # one image token: a 14-pixel patch, merged 2 x 2
CHECKPOINT_MIN_PIXELS, CHECKPOINT_MAX_PIXELS = 147384, 2822400  # the tiny checkpoint's own preprocessor bounds


def jpeg(size: tuple[int, int], color: str = "white") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def post(real, body: dict) -> httpx.Response:
    return httpx.post(f"{real.vlm_url}/v1/chat/completions", json=body, timeout=120)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def vllm_environment_variables(venv: Path) -> set[str]:
    """The VLLM_* names vLLM knows: the keys of `environment_variables` in the installed vllm/envs.py (read, not
    imported: importing vllm pulls in torch)."""
    (envs,) = venv.glob("lib/python3*/site-packages/vllm/envs.py")
    for node in ast.parse(envs.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "environment_variables":
            return {key.value for key in node.value.keys}  # type: ignore[union-attr]
    raise AssertionError(f"{envs} has no environment_variables")


def test_vllm_runs_supervisords_own_command_line_with_the_cpu_profile(real):
    info = real.info("vlm")
    assert info["statename"] == "RUNNING"
    cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
    words = [w.decode() for w in cmdline if w]
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(ROOT / "supervisord.conf")
    line = conf["program:vlm"]["command"].replace("%(here)s", str(ROOT))
    env = {**real.env, "SIDECAR_PORT": str(real.vlm_port), "VLM_CHAT_TEMPLATE":
           f"{real.env['PADDLEX_HOME']}/chat_templates/{MODEL}.jinja", "VLLM_API_SERVER_COUNT": "4",
           "VLLM_GPU_MEMORY_UTILIZATION": "0.5", "VLLM_MAX_MODEL_LEN": "16384",
           "VLLM_MAX_NUM_BATCHED_TOKENS": "131072", "VLLM_MAX_NUM_SEQS": "256", "VLLM_DATA_PARALLEL_SIZE": "1"}
    expected = shlex.split(re.sub(r"%\(ENV_(\w+)\)s", lambda m: env[m.group(1)], line))
    start = expected.index("serve")
    # start.sh exec'd vLLM with the config's line verbatim, then the cpu profile's additions
    assert words[words.index("serve"):][: len(expected) - start] == expected[start:]
    assert words[-4:] == ["--enforce-eager", "--no-trust-remote-code", "--api-server-count", "1"]
    vllm_env = environ(info["pid"])
    assert "VLLM_PORT" not in vllm_env  # set for the container, never handed to vLLM
    assert vllm_env["VLLM_TARGET_DEVICE"] == "cpu"
    # Only names vLLM knows: our VLLM_* settings (VLLM_URL, the tunables) would each log "Unknown vLLM environment
    # variable detected" (tests/unit/test_start_sh.py checks the same with every setting of ours set).
    known = vllm_environment_variables(real.venv)
    assert "VLLM_CACHE_ROOT" in vllm_env and "VLLM_URL" in real.env
    unknown = sorted(name for name in vllm_env if name.startswith("VLLM_") and name not in known)
    assert unknown == [], unknown
    assert "Unknown vLLM environment variable" not in real.log()


def test_pixel_bounds_and_chat_template_are_the_servers(real):
    """The request carries no mm_processor_kwargs; the token counts show the server's official bounds applied, not
    the checkpoint's, and the rendered prompt is PaddleX's for PaddleOCR-VL-1.6 ("...OCR:\\nAssistant:\\n")."""
    small = post(real, chat_request(model=MODEL, jpeg=jpeg((64, 32)), task="ocr", max_completion_tokens=MAX_TOKENS))
    large = post(real, chat_request(model=MODEL, jpeg=jpeg((3000, 3000)), task="ocr", max_completion_tokens=MAX_TOKENS))
    assert small.status_code == large.status_code == 200, small.text + large.text
    text_tokens = 40  # the template and prompt: well under 40 tokens here
    small_tokens, large_tokens = small.json()["usage"]["prompt_tokens"], large.json()["usage"]["prompt_tokens"]
    assert MIN_PIXELS // PATCH_PIXELS <= small_tokens < CHECKPOINT_MIN_PIXELS // PATCH_PIXELS
    assert large_tokens <= MAX_PIXELS // PATCH_PIXELS + text_tokens < CHECKPOINT_MAX_PIXELS // PATCH_PIXELS
    assert small.json()["usage"]["completion_tokens"] == MAX_TOKENS
    # what newer vLLM does with per-request processor kwargs (why the bounds live in supervisord.conf)
    body = chat_request(model=MODEL, jpeg=jpeg((64, 32)), task="ocr", max_completion_tokens=MAX_TOKENS)
    body["mm_processor_kwargs"] = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    rejected = post(real, body)
    assert rejected.status_code == 400 and "mm_processor_kwargs" in rejected.text
    # the prompt vLLM renders for a chat request is, token for token, PaddleX's 1.6 format ("Assistant:\n", the
    # chat_templates/PaddleOCR-VL-1.6-0.9B.jinja start.sh hands vLLM), not the first PaddleOCR-VL's "Assistant: "
    def tokenize(**body) -> list[int]:
        response = httpx.post(f"{real.vlm_url}/tokenize", timeout=30, json={"model": MODEL, **body})
        assert response.status_code == 200, response.text
        return response.json()["tokens"]

    chat = tokenize(messages=[{"role": "user", "content": [{"type": "text", "text": "OCR:"}]}])
    paddlex_16 = tokenize(prompt="<|begin_of_sentence|>User: OCR:\nAssistant:\n", add_special_tokens=False)
    paddlex_09 = tokenize(prompt="<|begin_of_sentence|>User: OCR:\nAssistant: ", add_special_tokens=False)
    assert chat == paddlex_16 != paddlex_09


def _convert(real, pdf, **params) -> httpx.Response:
    with pdf.open("rb") as handle:
        return httpx.post(f"{real.url}/ocr/pdf", params={"mode": "vl", "dpi": "72", **params},
                          files={"file": (pdf.name, handle, "application/pdf")}, timeout=300)


def _sent_blocks(document: dict) -> list[dict]:
    return [b for page in document["pages"] for b in page["blocks"] if b["type"] not in ("figure", "chart")]


def test_vl_conversion_through_ocr_pdf_reads_every_region_on_the_real_server(real, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    before = real.vllm_metric("vllm:request_success_total")
    generated_before = real.vllm_metric("vllm:generation_tokens_total")
    response = _convert(real, pdf)
    assert response.status_code == 200, response.text[:500]
    document = response.json()
    blocks = _sent_blocks(document)
    requests = real.vllm_metric("vllm:request_success_total") - before
    assert blocks and requests >= len(blocks)  # every text block is one request vLLM answered
    assert all(b["text"].strip() for b in blocks)  # and every answer landed in the result
    # vLLM's side: each request asked for (and got) exactly the client's max_completion_tokens
    assert real.vllm_metric("vllm:generation_tokens_total") - generated_before == requests * MAX_TOKENS


def test_vl_conversion_through_jobs(real, tmp_path):
    pdf = pdfgen.table_pdf(tmp_path / "table.pdf")
    with pdf.open("rb") as handle:
        created = httpx.post(f"{real.url}/jobs", data={"mode": "vl", "dpi": "72"},
                             files={"file": (pdf.name, handle, "application/pdf")}, timeout=60)
    assert created.status_code == 202, created.text
    status_url = real.url + created.json()["status_url"]
    state: dict = {}

    def finished() -> bool:
        state.update(httpx.get(status_url, timeout=10).json())
        return state["status"] in ("succeeded", "failed", "cancelled")

    wait_until(finished, 300, "the vl job", 0.5)
    assert state["status"] == "succeeded", state
    result = httpx.get(real.url + created.json()["result_url"], timeout=30).json()
    assert _sent_blocks(result) and all(b["text"].strip() for b in _sent_blocks(result))


def test_paddlex_layout_parsing_answers_through_the_real_sidecar_with_per_request_sampling(real, tmp_path):
    from tests.paddlex_schemas import validate_success

    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=1)
    before = real.vllm_metric("vllm:request_success_total")
    generated_before = real.vllm_metric("vllm:generation_tokens_total")
    payload = {"file": base64.b64encode(pdf.read_bytes()).decode(), "fileType": 0, "visualize": False,
               "maxNewTokens": 3, "temperature": 0.5, "topP": 0.9}
    response = httpx.post(f"{real.url}/layout-parsing", json=payload, timeout=300)
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    validate_success(body)
    (page,) = body["result"]["layoutParsingResults"]
    settings = page["prunedResult"]["model_settings"]
    assert settings["mode"] == "vl" and settings["page_source"] == "vl"
    assert settings["ignored_request_fields"] == []  # real vLLM takes every sampling field PaddleX sends
    requests = real.vllm_metric("vllm:request_success_total") - before
    assert requests >= 1 and page["markdown"]["text"].strip()
    # maxNewTokens reached vLLM: each request generated exactly 3 tokens, not the service's MAX_TOKENS
    assert real.vllm_metric("vllm:generation_tokens_total") - generated_before == requests * 3


def test_the_clients_error_paths_on_real_answers(real):
    async def run() -> dict[str, str]:
        client = VlmClient(Settings(_env_file=None, vllm_url=f"{real.vlm_url}/v1", use_vlm_api=True))
        out = {}
        try:
            await client.wait_until_ready(30)
            cases = {
                "wrong_model": chat_request(model="nope", jpeg=jpeg((64, 32)), task="ocr", max_completion_tokens=4),
                "bad_image": chat_request(model=MODEL, jpeg=b"not a jpeg" * 20, task="ocr", max_completion_tokens=4),
                "too_many_tokens": chat_request(model=MODEL, jpeg=jpeg((64, 32)), task="ocr",
                                                max_completion_tokens=20_000),
            }
            for name, body in cases.items():
                with pytest.raises(SidecarFailed) as caught:
                    await client.chat(body)
                out[name] = caught.value.message
            out["ok"] = await client.chat(chat_request(model=MODEL, jpeg=jpeg((64, 32)), task="ocr",
                                                       max_completion_tokens=4))
            out["ready"] = str(client.ready)
        finally:
            await client.aclose()
        return out

    out = asyncio.run(run())
    assert "(404)" in out["wrong_model"] and MODEL in out["wrong_model"]
    assert "(400)" in out["bad_image"]
    assert "(400)" in out["too_many_tokens"]
    assert out["ok"] and out["ready"] == "True"  # rejected requests are not held against the sidecar


def test_doctor_on_the_real_server_passes_all_but_reading_and_says_so(real, tmp_path):
    env = {**real.env, "OUTPUT_DIR": str(tmp_path / "out")}
    result = subprocess.run([sys.executable, "-m", "app", "doctor", "--timeout", "30"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    ok = {line.split(":")[0].split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")}
    assert ok == {"models", "opencv", "languages", "layout", "sidecar"}, result.stdout + result.stderr
    (failed,) = result.stderr.strip().splitlines()
    assert failed.startswith("FAIL vl: word F1 0.") and "needs >= 0.90" in failed  # random weights cannot read


def test_kill_9_of_vllm_under_load_gives_200_or_503_and_readiness_returns(real, tmp_path):
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)
    first_pid = real.info("vlm")["pid"]
    running = lambda: real.vllm_metric("vllm:num_requests_running") > 0  # noqa: E731
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_convert, real, pdf) for _ in range(4)]
        wait_until(running, 120, "requests running in vLLM", 0.05)
        # The kill must land mid-request, else this would only test a restart: vLLM still running some, and ours
        # still waiting on some, read the instant before it.
        in_flight = real.vllm_metric("vllm:num_requests_running")
        waiting = sum(not f.done() for f in futures)
        os.kill(first_pid, signal.SIGKILL)
        responses = [f.result() for f in futures]
    assert in_flight > 0 and waiting > 0, f"the kill landed after the work: {in_flight} running, {waiting} waiting"
    assert_served_or_shed(responses)
    wait_until(lambda: real.status("/readyz") == 200 and real.info("vlm")["pid"] != first_pid, VLLM_START_S,
               f"supervisord to restart vLLM and readiness to return\n{real.log()[-3000:]}", 1.0)
    assert real.info("vlm")["statename"] == "RUNNING"
    assert _convert(real, pdf).status_code == 200


def test_sigterm_to_supervisord_stops_vllm_and_the_api_within_the_grace(real):
    pids = {program: real.info(program)["pid"] for program in ("api", "vlm")}
    started = time.monotonic()
    real.proc.send_signal(signal.SIGTERM)
    assert real.proc.wait(timeout=90) == 0
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(ROOT / "supervisord.conf")
    grace = sum(int(conf[f"program:{p}"]["stopwaitsecs"]) for p in ("api", "vlm"))  # stopped one after the other
    assert time.monotonic() - started < grace
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    # vLLM's engine and worker processes (in its process group) are gone within the same grace too
    def group_empty() -> bool:
        return subprocess.run(["pgrep", "-g", str(pids["vlm"])], capture_output=True).returncode == 1

    wait_until(group_empty, max(0.0, grace - (time.monotonic() - started)), "vLLM's engine processes to exit", 0.1)
    elapsed = time.monotonic() - started
    print(f"\nSIGTERM stopped the appliance in {elapsed:.1f}s")
