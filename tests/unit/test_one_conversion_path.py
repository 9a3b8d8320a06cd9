"""One module drives conversions: outside the runtime (app/runtime) and the conversion service (app/conversion),
no module of app calls the runtime's document functions itself; the routes, the MCP tools, the job runner, the
CLI, batch, warm-up and doctor all go through app/conversion/service.py. Checked on the source, every import
counted (also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
RUNTIME_DOCUMENT = "app.runtime.document"
# What only the service may call: a whole conversion, and the waiting admission it applies by policy.
DRIVERS = {"convert_document", "convert_file_sync", "admit_waiting"}
ALLOWED = ("app/runtime/", "app/conversion/")


def direct_calls(source: str) -> list[str]:
    """Every use of the runtime's conversion drivers in `source`: imported by name, or reached as an attribute of
    the module (`document.convert_document`, `app.runtime.document.convert_document`)."""
    tree = ast.parse(source)
    aliases = set()  # names bound to the module app.runtime.document
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            for alias in node.names:
                if node.module == RUNTIME_DOCUMENT and alias.name in DRIVERS:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                if node.module == "app.runtime" and alias.name == "document":
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == RUNTIME_DOCUMENT and alias.asname:
                    aliases.add(alias.asname)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DRIVERS:
            owner = ast.unparse(node.value)
            if owner in aliases or owner == RUNTIME_DOCUMENT:
                found.append(f"line {node.lineno}: {owner}.{node.attr}")
    return found


def test_the_checker_finds_every_way_of_reaching_the_driver() -> None:
    source = ("from app.runtime.document import convert_document\n"
              "from app.runtime import document as doc\n"
              "import app.runtime.document\n"
              "def f():\n    doc.admit_waiting(p, 1)\n    app.runtime.document.convert_file_sync(x)\n"
              "async def convert_document(ctx):\n    pass\n")  # a tool of that name is not the runtime's
    assert direct_calls(source) == [
        "line 1: from app.runtime.document import convert_document",
        "line 5: doc.admit_waiting",
        "line 6: app.runtime.document.convert_file_sync",
    ]
    assert direct_calls("from app.runtime.document import merge_pages, for_each_document\n") == []


def test_only_the_runtime_and_the_conversion_service_drive_conversions() -> None:
    offenders = {}
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(APP.parent).as_posix()
        if relative.startswith(ALLOWED):
            continue
        if calls := direct_calls(path.read_text()):
            offenders[relative] = calls
    assert offenders == {}
