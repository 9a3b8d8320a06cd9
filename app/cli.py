"""`python -m app <command>`: each command lives in `app/commands/<name>.py` and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys

# Command modules, each exposing `register(subparsers)` that adds its parser with `func=run`.
COMMANDS = ("convert", "serve", "batch", "doctor", "mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="PDF to Markdown and JSON")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"app.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
