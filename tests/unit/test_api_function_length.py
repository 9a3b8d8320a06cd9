"""The HTTP layer stays a set of thin adapters: no function in app/api/ runs past 60 lines (decorators aside).

A route that grows past that is doing work that belongs in a service below it (STYLE.md, "One path, many
doors")."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "app" / "api"
MAX_LINES = 60


def test_no_function_in_the_api_layer_is_over_60_lines():
    long = []
    for path in sorted(API.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(API.parent.parent)}:{node.lineno} {node.name}: {lines} lines")
    assert API.is_dir() and not long, long
