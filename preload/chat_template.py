"""Copy PaddleX's chat template for one PaddleOCR-VL model out of the installed wheel:
`python preload/chat_template.py MODEL OUT_DIR` writes OUT_DIR/MODEL.jinja (Dockerfile.vllm, runtime stage).

vLLM serves PaddleOCR-VL with the template PaddleX's own genai server uses (`paddlex/inference/genai/chat_templates/
<model>.jinja`: "Assistant:\\n" for PaddleOCR-VL-1.6-0.9B, "Assistant: " for PaddleOCR-VL-0.9B). The file is found
WITHOUT importing `paddlex.inference.genai`: in paddlex 3.7.2 that package's `__init__` calls
`require_genai_engine_plugin()` (`paddlex/utils/deps.py`), which raises unless fastdeploy or the genai-vllm-server
extra is installed, and the app's venv has neither (the sidecar is the base image's vLLM). `find_spec` on the
top-level package only locates it; nothing of paddlex runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

TEMPLATES = ("inference", "genai", "chat_templates")


def template_path(model: str) -> Path:
    """Where the installed paddlex keeps `model`'s chat template; FileNotFoundError names what is there."""
    spec = importlib.util.find_spec("paddlex")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("paddlex is not installed in this Python")
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*TEMPLATES)
    path = folder / f"{model}.jinja"
    if not path.is_file():
        there = sorted(p.stem for p in folder.glob("*.jinja")) if folder.is_dir() else []
        raise FileNotFoundError(f"no chat template for {model} in {folder} (there: {', '.join(there) or 'none'})")
    return path


def copy_template(model: str, out_dir: Path) -> Path:
    """Copy `model`'s template to `out_dir/<model>.jinja` (temp file, then rename); returns the target."""
    source = template_path(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{model}.jinja"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{model}-", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.splitlines()[1].strip(), file=sys.stderr)
        return 2
    try:
        target = copy_template(args[0], Path(args[1]))
    except FileNotFoundError as exc:
        print(f"chat_template: {exc}", file=sys.stderr)
        return 1
    print(f"chat_template: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
