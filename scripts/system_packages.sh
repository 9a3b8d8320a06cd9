#!/usr/bin/env bash
# Install the Debian packages named on the command line that are missing, when we can (root with apt-get: CI, a
# fresh container); otherwise print one line naming them, and the tests that need them skip with their own line.
# Usage: scripts/system_packages.sh PURPOSE PACKAGE...
set -euo pipefail
purpose="$1"
shift
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages for $purpose: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "skipping Debian packages for $purpose (not root or no apt-get): ${missing[*]}; the checks that need them skip"
fi
