#!/usr/bin/env bash
# Static checks for what cannot run here (images, manifests, shell, supervisord config). Every tool works
# offline, and every one comes from requirements-dev.txt in .venv (hadolint, shellcheck, yamllint, kubectl for
# kustomize, kubernetes-validate with its schemas), so no apt step is needed. Each check skips only when its target
# is absent; a missing tool is an error, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${VENV:-.venv}/bin"
failures=0

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; failures=$((failures + 1)); }
need() { command -v "$1" >/dev/null 2>&1 || { echo "missing tool: $1 (make install-dev)" >&2; exit 2; }; }

need "$BIN/ruff"
need "$BIN/hadolint"
need "$BIN/yamllint"
need "$BIN/kubectl"
need "$BIN/kubernetes-validate"
need "$BIN/python"
need "$BIN/shellcheck"

step "ruff (pyflakes: unused names, undefined names, syntax)"
"$BIN/ruff" check --quiet --select F,E9 app tests bench preload warmup.py || fail "ruff"

step "hadolint"
for dockerfile in Dockerfile.vllm Dockerfile.cpu; do
    [[ -f "$dockerfile" ]] || continue
    "$BIN/hadolint" "$dockerfile" || fail "hadolint $dockerfile"
done

step "shellcheck"
mapfile -t shell_scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' .ci/run)
if ((${#shell_scripts[@]})); then
    "$BIN/shellcheck" "${shell_scripts[@]}" || fail "shellcheck"
fi

step "yamllint"
mapfile -t yaml_files < <(git ls-files --cached --others --exclude-standard -- '*.yaml' '*.yml' .yamllint)
if ((${#yaml_files[@]})); then
    "$BIN/yamllint" -s "${yaml_files[@]}" || fail "yamllint"
fi

step "kustomize render + kubernetes-validate --strict"
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
for kustomization in k8s/overlays/* k8s/batch k8s/trial-postgres; do
    [[ -f "$kustomization/kustomization.yaml" ]] || continue
    out="$rendered/$(echo "$kustomization" | tr / _).yaml"
    if "$BIN/kubectl" kustomize "$kustomization" >"$out"; then
        "$BIN/kubernetes-validate" --strict --quiet "$out" || fail "kubernetes-validate $kustomization"
    else
        fail "kustomize $kustomization"
    fi
done
for example in k8s/base/*.example.yaml; do
    [[ -f "$example" ]] || continue
    "$BIN/kubernetes-validate" --strict --quiet "$example" || fail "kubernetes-validate $example"
done

step "supervisord config (parsed by supervisor itself)"
if [[ -f supervisord.conf ]]; then
    "$BIN/python" - supervisord.conf start.sh <<'PY' || fail "supervisord.conf"
import os
import re
import sys
import tempfile

from supervisor.options import ServerOptions

conf_path, start_sh = sys.argv[1], sys.argv[2]
# start.sh exports a default for every %(ENV_X)s the config expands; take them from there, so this check also
# fails when the config grows a variable start.sh does not provide.
script = open(start_sh, encoding="utf-8").read()
defaults = dict(re.findall(r'([A-Z_][A-Z0-9_]*)="\$\{\1:-([^}]*)\}"', script))
defaults["VLM_AUTOSTART"] = "false"  # set per profile by start.sh
needed = set(re.findall(r"%\(ENV_([A-Z0-9_]+)\)s", open(conf_path, encoding="utf-8").read()))
missing = sorted(needed - defaults.keys() - {"TMPDIR"})
if missing:
    sys.exit(f"supervisord.conf uses variables start.sh gives no default: {', '.join(missing)}")
tmp = tempfile.mkdtemp()
os.makedirs(os.path.join(tmp, "appliance-supervisor"))
for name in needed:
    os.environ[name] = tmp if name == "TMPDIR" else defaults[name].replace("$HOME", os.path.expanduser("~"))

options = ServerOptions()
# realize() parses the file exactly as supervisord would (sections, expansions, program commands) and exits
# with a usage error on any problem; it neither forks nor opens the socket.
options.realize(["-c", conf_path])
names = [group.name for group in options.process_group_configs]
print("supervisord.conf programs:", ", ".join(names))
PY
fi

if ((failures)); then
    echo "static checks: $failures failed" >&2
    exit 1
fi
echo "static checks: ok"
