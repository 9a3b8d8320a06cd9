"""The real supervisord running this repo's supervisord.conf via start.sh, with the fake vLLM as the `vlm` program.

Each test gets unique free ports, a temp OUTPUT_DIR and supervisor run dir; teardown SIGKILLs supervisord and
every process group it started (supervisord puts each program in its own group), even when a test fails.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import sys
import threading
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.models_manifest import VLM_MODEL
from tests import pdfgen
from tests.server_process import ROOT, assert_served_or_shed, free_port, wait_until

STARTUP_S = 180.0


def fake_models(home: Path) -> Path:
    """A PADDLEX_HOME whose manifest passes the gpu profile's models check (the fake needs no weights)."""
    from app.models_manifest import LAYOUT_MODEL, VLM_MODEL, ModelSource, write_manifest

    models = home / "official_models"
    for name in (VLM_MODEL, LAYOUT_MODEL):
        (models / name).mkdir(parents=True)
        (models / name / "config.json").write_text("{}")
    write_manifest(models, [ModelSource(name=n, repo_id="test/none", revision="0") for n in (VLM_MODEL, LAYOUT_MODEL)])
    return home


class Appliance:
    def __init__(self, tmp: Path, *, profile: str = "gpu", fake_args: str = "--answers echo",
                 vlm_command: str | None = None, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.api_port, self.vlm_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.vlm_url = f"http://127.0.0.1:{self.vlm_port}"
        # short: a unix socket path must stay under ~100 characters
        self.tmpdir = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))
        self.run_dir = self.tmpdir / "appliance-supervisor"
        self.log_path = tmp / "appliance.log"
        fake = f"{shlex.quote(sys.executable)} -m tests.fakes.fake_vllm --port $SIDECAR_PORT {fake_args}"
        self.env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(tmp),
            "PYTHONPATH": str(ROOT),
            "PROFILE": profile,
            "PADDLEX_HOME": str(fake_models(tmp / "paddlex")),
            "OUTPUT_DIR": str(tmp / "output"),
            "TMPDIR": str(self.tmpdir),
            "HOST": "127.0.0.1",
            "PORT": str(self.api_port),
            "VLLM_URL": f"{self.vlm_url}/v1",
            "VLM_COMMAND": vlm_command or fake,
            "WORKERS": "1",
            "VLM_STARTSECS": "1",
            "VLM_STARTRETRIES": "2",
            "API_STARTSECS": "1",
            "VLM_MODEL_NAME": VLM_MODEL,
            "VLM_PROBE_INTERVAL_S": "0.3",
            "VLM_RETRIES": "2",
            "VLM_STARTUP_TIMEOUT_S": "150",
            "SHUTDOWN_GRACE_S": "5",
            "MAX_SYNC_WAIT_S": "120",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.groups: set[int] = set()

    def start(self) -> Appliance:
        # A pipe, as in a container: supervisord reopens /dev/stdout and /dev/stderr for the programs' logs, and
        # on a regular file each reopening would get its own offset and overwrite the others.
        self.proc = subprocess.Popen(["bash", str(ROOT / "start.sh")], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._drain = threading.Thread(target=self._copy_log, daemon=True)
        self._drain.start()
        return self

    def _copy_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_path, "wb") as log:
            for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
                log.write(chunk)
                log.flush()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rpc(self) -> xmlrpc.client.ServerProxy:
        from supervisor.xmlrpc import SupervisorTransport

        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.run_dir}/supervisor.sock"))

    def info(self, program: str) -> dict:
        info = self.rpc().supervisor.getProcessInfo(program)
        if info["pid"]:
            self.groups.add(info["pid"])  # each program leads its own process group
        return info

    def state(self, program: str) -> str:
        """supervisord's state name for the program; "" while supervisord is not answering yet."""
        try:
            return str(self.info(program)["statename"])
        except (OSError, xmlrpc.client.Error):
            return ""

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def status(self, path: str) -> int:
        try:
            return self.get(path, timeout=3).status_code
        except httpx.TransportError:
            return 0

    def alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
        return True

    def wait_ready(self) -> None:
        wait_until(lambda: self.alive() and self.status("/readyz") == 200, STARTUP_S, f"readiness\n{self.log()[-3000:]}", 0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                for program in ("api", "vlm"):
                    self.info(program)
            except Exception:  # noqa: BLE001 - best effort: supervisord may already be wedged
                pass
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._drain.join(10)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture
def appliance(tmp_path):
    started: list[Appliance] = []

    def make(**kwargs) -> Appliance:
        app = Appliance(tmp_path, **kwargs).start()
        started.append(app)
        return app

    yield make
    for app in started:
        app.stop()


def test_readyz_is_503_until_the_sidecar_is_healthy_and_warm_then_200(appliance):
    app = appliance(fake_args="--answers echo --startup-delay-s 6")
    seen_503_while_fake_starting = False
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and app.alive():
        ready = app.status("/readyz")
        try:
            fake_health = httpx.get(f"{app.vlm_url}/health", timeout=2).status_code
        except httpx.TransportError:
            fake_health = 0
        if ready == 200:
            break
        if ready == 503 and fake_health != 200:
            seen_503_while_fake_starting = True
            assert app.get("/health").json()["vllm_status"] == "unavailable"
        time.sleep(0.3)
    assert app.status("/readyz") == 200, app.log()[-3000:]
    assert seen_503_while_fake_starting
    health = app.get("/health").json()
    assert health["vllm_status"] == "available" and health["warm"] is True
    # the warm-up pushed the bundled page through the sidecar before readiness turned true
    assert httpx.get(f"{app.vlm_url}/fake/stats").json()["answered"] >= 1
    assert app.info("vlm")["statename"] == "RUNNING"


def test_kill_9_of_the_sidecar_mid_batch_gives_no_500_and_readiness_comes_back(appliance, tmp_path):
    app = appliance(fake_args="--answers echo --latency-ms 400 --startup-delay-s 3")
    app.wait_ready()
    pdf = pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)

    def convert() -> httpx.Response:
        with pdf.open("rb") as handle:
            return httpx.post(f"{app.url}/ocr/pdf", params={"mode": "vl", "dpi": "72"},
                              files={"file": ("doc.pdf", handle, "application/pdf")}, timeout=120)

    first_pid = app.info("vlm")["pid"]
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(convert) for _ in range(6)]
        wait_until(lambda: httpx.get(f"{app.vlm_url}/fake/stats", timeout=2).json()["in_flight"] > 0, 60,
                   "vl requests in flight at the sidecar")
        os.kill(first_pid, signal.SIGKILL)
        wait_until(lambda: app.status("/readyz") == 503, 15, "readiness to turn false")
        responses = [f.result() for f in futures]
    assert_served_or_shed(responses)
    assert all(r.json()["error"]["type"] == "sidecar_unavailable" for r in responses if r.status_code == 503)
    # supervisord restarted the sidecar and readiness returned by itself
    wait_until(lambda: app.status("/readyz") == 200, 60, "readiness to return")
    assert app.info("vlm")["pid"] != first_pid
    assert convert().status_code == 200


def test_sigterm_to_supervisord_stops_everything_within_the_grace_period(appliance):
    app = appliance()
    app.wait_ready()
    api_pid, vlm_pid = app.info("api")["pid"], app.info("vlm")["pid"]
    started = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    code = app.proc.wait(timeout=40)
    elapsed = time.monotonic() - started
    assert code == 0
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(ROOT / "supervisord.conf")
    budget = sum(int(conf[f"program:{p}"]["stopwaitsecs"]) for p in ("api", "vlm"))  # stopped one after the other
    assert elapsed < budget
    for pid in (api_pid, vlm_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "stopped: api" in app.log() and "stopped: vlm" in app.log()


def test_cpu_profile_never_starts_the_sidecar(appliance):
    app = appliance(profile="cpu", vlm_command="false")
    app.wait_ready()
    assert app.info("vlm")["statename"] == "STOPPED"
    body = app.get("/health").json()
    assert body["vllm_status"] == "disabled" and body["use_vlm_api"] is False


def test_a_sidecar_that_keeps_crashing_goes_fatal_and_health_says_why(appliance):
    app = appliance(vlm_command="bash -c 'echo vllm: CUDA out of memory >&2; exit 3'")
    wait_until(lambda: app.alive() and app.state("vlm") == "FATAL", 60, "the vlm program to go FATAL")

    def reports_fatal() -> bool:
        response = app.get("/health")
        return response.status_code == 503 and "FATAL" in response.json().get("reason", "")

    wait_until(lambda: app.status("/health") != 0 and reports_fatal(), 60, "/health to report the FATAL sidecar")
    assert app.status("/readyz") == 503
    assert "CUDA out of memory" in app.log()  # the sidecar's own stderr reaches the container log


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROFILE": "gpu", "PADDLEX_HOME": "/nonexistent"}, "model dir /nonexistent/official_models"),
        ({"PROFILE": "cpu", "OUTPUT_DIR": "/proc/not-writable"}, "OUTPUT_DIR /proc/not-writable"),
        ({"PROFILE": "tpu"}, "PROFILE must be 'cpu' or 'gpu'"),
    ],
)
def test_start_sh_refuses_a_bad_environment_with_one_clear_line(env, message, tmp_path):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "OUTPUT_DIR": str(tmp_path)}
    result = subprocess.run(["bash", str(ROOT / "start.sh")], env={**base, **env}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
