#!/usr/bin/env bash
# The stdio MCP server from a clone, for a desktop client's config: installs the runtime virtualenv on first use
# (its output goes to stderr: stdout carries the protocol), then becomes `python -m app mcp`. Settings come from
# the environment the client passes (MCP_PATH_ROOTS, WORKERS, ...), as for `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install >&2
exec .venv/bin/python -m app mcp
