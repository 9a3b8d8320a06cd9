#!/usr/bin/env bash
# Container entrypoint. `start.sh`: validate the environment, pick the profile, exec supervisord, which runs
# `vlm` (vLLM on 127.0.0.1:8080, gpu profile only) and `api` (python3 -m app serve on 0.0.0.0:8081).
# `start.sh vllm serve ...`: the `vlm` program's command (the full vLLM command line is in supervisord.conf); runs
# it with VLLM_EXTRA_ARGS appended, or runs $VLM_COMMAND instead when set (tests run the fake sidecar this way,
# with the same supervisord.conf; $VLLM_PORT is set for it).
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

if [[ "${1:-}" == "vllm" ]]; then
    export VLLM_PORT="${VLLM_PORT:-$(vllm_url_port)}"
    if [[ -n "${VLM_COMMAND:-}" ]]; then
        # Deliberately a shell command line, so tests and operators can pass flags.
        exec bash -c "exec ${VLM_COMMAND}"
    fi
    extra=()
    # Word-split on purpose: VLLM_EXTRA_ARGS="--enforce-eager --max-num-seqs 64" (later flags win in vLLM).
    read -r -a extra <<<"${VLLM_EXTRA_ARGS:-}"
    exec "$@" "${extra[@]}"
fi
[[ $# -eq 0 ]] || die "usage: start.sh   (or, as supervisord's vlm program: start.sh vllm serve ...)"

export PROFILE="${PROFILE:-cpu}"
export PADDLEX_HOME="${PADDLEX_HOME:-$HOME/.paddlex}"
export VLM_MODEL_NAME="${VLM_MODEL_NAME:-PaddleOCR-VL-0.9B}"
export VLLM_URL="${VLLM_URL:-http://127.0.0.1:8080/v1}"
case "$PROFILE" in
    gpu)
        export VLM_AUTOSTART=true
        export USE_VLM_API="${USE_VLM_API:-true}"
        if [[ -z "${VLM_COMMAND:-}" ]]; then
            model_dir="$PADDLEX_HOME/official_models/PaddleOCR-VL-0.9B"
            [[ -d "$model_dir" && -n "$(ls -A "$model_dir" 2>/dev/null)" ]] \
                || die "PROFILE=gpu but the model dir $model_dir is missing or empty (set PADDLEX_HOME)"
            command -v vllm >/dev/null || die "PROFILE=gpu but vllm is not on PATH (use the gpu image)"
            [[ "$(vllm_url_port)" == 8080 ]] \
                || die "VLLM_URL $VLLM_URL must point at the sidecar on 127.0.0.1:8080 (supervisord.conf)"
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
export VLLM_EXTRA_ARGS="${VLLM_EXTRA_ARGS:-}"
# vLLM loads for a minute or more: dying within VLM_STARTSECS is a failed start, and after VLM_STARTRETRIES of
# those supervisord gives up (FATAL), which the API's /health reports.
export VLM_STARTSECS="${VLM_STARTSECS:-90}" VLM_STARTRETRIES="${VLM_STARTRETRIES:-3}"
export API_STARTSECS="${API_STARTSECS:-5}"
export HOST="${HOST:-0.0.0.0}" PORT="${PORT:-8081}"
# pidfile and control socket: $TMPDIR is writable even with a read-only root filesystem.
export TMPDIR="${TMPDIR:-/tmp}"
mkdir -p "$TMPDIR/appliance-supervisor" || die "cannot create $TMPDIR/appliance-supervisor (TMPDIR must be writable)"
chmod 0700 "$TMPDIR/appliance-supervisor"
command -v python3 >/dev/null || die "python3 is not on PATH"

echo "start.sh: profile=$PROFILE api=$HOST:$PORT vlm=$([[ $VLM_AUTOSTART == true ]] && echo "$VLLM_URL" || echo off)"
exec supervisord -n -c "$HERE/supervisord.conf"
