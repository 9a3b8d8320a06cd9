#!/usr/bin/env bash
# Rehearse the GPU image's Python build steps without Docker: usage scripts/rehearse_image.sh [VENV_DIR]
#
# Dockerfile.vllm's Python steps fail only on a build machine with a GPU base image; this runs the same steps here,
# in a Python 3.12 venv (the vLLM base image's Python) with the image's exact pins, so such a failure shows in CI
# first:
#   1. install: requirements.txt (minus numpy) + requirements-gpu.txt, then the OpenCV swap, as the venv stage;
#      paddlepaddle-gpu is replaced by the CPU wheel of the SAME version (the GPU wheel lives on Paddle's own index,
#      needs CUDA, and shares the Python code: paddle's loaders and PaddleX are the same);
#   2. the venv stage's import check;
#   3. the chat-template lookup (preload/chat_template.py, the very command the runtime stage runs);
#   4. the manifest: preload_models.py's write and --verify on stand-in files named like the baked models;
#   5. the final build-time smoke test, `python -m app doctor --cpu-only` in the gpu profile: PP-DocLayoutV3 loads
#      and runs on a blank page. The real weights are on the model hub, which CI cannot reach, so this step loads a
#      randomly initialised PP-DocLayoutV3 built offline by scripts/build_random_doclayout.py from PaddleX's own
#      model code and config (same loader, same processors; only the numbers differ).
#
# The venv is cached: VENV_DIR/.installed holds the hash of the pins and of the install steps' version; a change
# rebuilds it.
# Where no Python 3.12 exists the rehearsal is skipped with one line (exit 0), so `make test` stays green.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$HERE/.venv-rehearsal}"
cd "$HERE"

py312=""
for candidate in python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12 /usr/bin/python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        py312="$(command -v "$candidate")"
        break
    fi
done
if [[ -z "$py312" ]]; then
    echo "rehearse_image: SKIPPED: no Python 3.12 on this machine (the vLLM base image's Python)"
    exit 0
fi

# One rehearsal at a time per venv: a second run waits instead of rebuilding the venv under the first.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

# Bump when the install steps below change (the pins are hashed themselves).
INSTALL_STEPS_VERSION=1
stamp="$( (cat requirements.txt requirements-gpu.txt; echo "$INSTALL_STEPS_VERSION") | sha256sum | cut -d' ' -f1)"
t0=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- 1. the venv stage's install (cached) ---------------------------------------------------------------------
if [[ ! -f "$VENV/.installed" || "$(cat "$VENV/.installed")" != "$stamp" ]]; then
    rm -rf "$VENV"
    "$py312" -m venv "$VENV"
    grep -v '^numpy==' requirements.txt >"$work/requirements-app.txt"
    # The image's GPU wheel and its index line become the CPU wheel of the same version.
    sed -e 's/^paddlepaddle-gpu==/paddlepaddle==/' -e '/^--extra-index-url/d' -e '/^--index-url/d' \
        requirements-gpu.txt >"$work/requirements-gpu-cpu.txt"
    grep -q '^paddlepaddle==' "$work/requirements-gpu-cpu.txt" || { echo "rehearse_image: no paddlepaddle pin" >&2; exit 1; }
    # pip's own exit status counts (the filter only drops this machine's wheel-folder warnings from stderr).
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$work/requirements-app.txt" \
        -r "$work/requirements-gpu-cpu.txt" 2> >(grep -v '^WARNING: Location' >&2)
    "$VENV/bin/pip" uninstall -q -y opencv-python opencv-python-headless
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall \
        "$(grep '^opencv-contrib-python==' requirements-gpu.txt)" 2> >(grep -v '^WARNING: Location' >&2)
    echo "$stamp" >"$VENV/.installed"
    echo "rehearse_image: venv built in $((SECONDS - t0))s"
fi
py="$VENV/bin/python"
# The pins must be what got installed (a resolver that moved one would make this rehearsal lie).
"$py" - requirements-gpu.txt <<'EOF'
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" not in line or line.startswith("-"):
        continue
    name, pinned = line.split("==")
    name = name.split("[")[0].replace("paddlepaddle-gpu", "paddlepaddle")
    if version(name) != pinned:
        sys.exit(f"rehearse_image: {name} is {version(name)}, pinned {pinned}")
EOF

# --- 2. the venv stage's import check (Dockerfile.vllm, stage venv) -------------------------------------------
"$py" -c "import cv2, paddlex, fastapi, supervisor, rapidocr"
echo "rehearse_image: imports ok"

# --- 3. the chat template the runtime stage copies (same command as Dockerfile.vllm) ---------------------------
for model in PaddleOCR-VL-1.6-0.9B PaddleOCR-VL-0.9B; do
    "$py" preload/chat_template.py "$model" "$work/chat_templates"
    test -s "$work/chat_templates/$model.jinja"
done
echo "rehearse_image: chat templates found"

# --- 4 + 5. models: stand-ins written and verified like the baked ones, then the build-time doctor ---------------
models="$work/paddlex/official_models"
"$py" scripts/build_random_doclayout.py "$models" --cache "$VENV/random-model"
"$py" preload/preload_models.py --manifest-only --models-dir "$models"
"$py" preload/preload_models.py --verify --models-dir "$models"
echo "rehearse_image: manifest written and verified"
PROFILE=gpu PADDLEX_HOME="$work/paddlex" PADDLE_PDX_CACHE_HOME="$work/pdx-cache" HOME="$work" \
    PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True LAYOUT_ENGINE=paddlex WORKERS=1 OUTPUT_DIR="$work/output" \
    "$py" -m app doctor --cpu-only
echo "rehearse_image: passed in $((SECONDS - t0))s"
