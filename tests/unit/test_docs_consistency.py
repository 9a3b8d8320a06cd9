"""The documents a newcomer reads first agree with the code: every module path ARCHITECTURE.md names exists, every
dotted name it cites resolves, and every default `.env.example` shows is the default `Settings` really has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
PY_FILES = [p.relative_to(ROOT).as_posix() for p in ROOT.glob("app/**/*.py")] + [
    p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/*.py") if not p.is_relative_to(ROOT / "app")
]


def _tree_paths(text: str) -> list[list[str]]:
    """Each entry of the ``` tree block as its full path (built from the indentation), and each module file a
    description names (`recognize/  OCR engines (ocr.py: ...)`) as the places it could mean: beside the entry,
    under app/, or from the root. Deeply indented lines continue the previous entry's description."""
    block = re.search(r"```\n(app/.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md lost its module tree"
    stack: list[tuple[int, str]] = []
    paths: list[list[str]] = []
    here = ""
    for line in block.group(1).splitlines():
        match = re.match(r"( *)(\S+)", line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2)
        description = line[match.end():]
        if indent >= 16:
            description = line
        else:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1] if stack else ""
            path = parent + name
            if name.endswith("/"):
                stack.append((indent, path))
                here = path
            else:
                here = parent
            paths.append([path])
        for module in re.findall(r"(?<![\w/*])([\w/]+\.py)\b", description):
            paths.append([here + module, "app/" + module, module])
    return paths


def _cited_files(text: str) -> set[str]:
    """Backticked `x/y.py` or `y.py` names in the prose."""
    return {m for m in re.findall(r"`([\w/]+\.py)", text)}


def test_every_directory_and_module_in_the_tree_exists() -> None:
    missing = []
    for places in _tree_paths(ARCHITECTURE):
        if "{" in places[0]:  # tests/{unit,api,...}: every one of them
            head, names = re.match(r"(.*)\{(.*)\}", places[0]).groups()
            missing += [head + n for n in names.split(",") if not (ROOT / head / n).exists()]
        elif not any((ROOT / place).exists() for place in places):
            missing.append(places[0])
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_every_package_under_app_is_in_the_tree() -> None:
    """The reverse direction: a new package (a directory of modules) cannot appear without the map telling it."""
    named = {places[0].rstrip("/") for places in _tree_paths(ARCHITECTURE)}
    packages = sorted(
        path.parent.relative_to(ROOT).as_posix() for path in ROOT.glob("app/**/__init__.py")
        if "migrations" not in path.parts  # Alembic's folders are told with jobs/migrations/
    )
    assert packages, "expected packages under app/"
    untold = [package for package in packages if package not in named]
    assert not untold, f"ARCHITECTURE.md's tree lacks these packages: {untold}"


def test_every_module_file_named_in_the_prose_exists() -> None:
    missing = [name for name in _cited_files(ARCHITECTURE) if not any(f.endswith("/" + name) or f == name
                                                                      for f in PY_FILES)]
    assert not missing, f"ARCHITECTURE.md cites module files that do not exist: {sorted(missing)}"


def _app_modules() -> dict[str, str]:
    """Short dotted names (`intake`, `pipeline.intake`, `vlm.client`) -> the full module under app."""
    names: dict[str, str] = {}
    for file in ROOT.glob("app/**/*.py"):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        full = ".".join(parts)
        for start in range(1, len(parts)):
            names.setdefault(".".join(parts[start:]), full)
    return names


def _cited_dotted_names(text: str) -> set[str]:
    """Backticked `module.Name` or `module.function(...)` references whose module is one of ours."""
    modules = _app_modules()
    cited = set()
    for token in re.findall(r"`([a-z_][\w.]*\.[A-Za-z_]\w*)(?:\(|`)", text):
        if token.startswith("app.state") or token.endswith(".py"):
            continue
        parts = token.split(".")
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in modules:
                cited.add(token)
                break
    return cited


def test_every_dotted_name_in_the_prose_resolves() -> None:
    modules = _app_modules()
    unresolved = []
    cited = _cited_dotted_names(ARCHITECTURE)
    assert cited, "expected ARCHITECTURE.md to cite code by dotted names"
    for token in sorted(cited):
        parts = token.split(".")
        for cut in range(len(parts), 0, -1):  # the longest prefix that names one of our modules
            module_name = modules.get(".".join(parts[:cut]))
            if module_name:
                break
        target: object = importlib.import_module(module_name)
        try:
            for attr in parts[cut:]:
                target = getattr(target, attr)
        except AttributeError:
            unresolved.append(token)
    assert not unresolved, f"ARCHITECTURE.md cites names the code does not have: {unresolved}"


# --- .env.example ------------------------------------------------------------------------------------------------
def _example_defaults() -> dict[str, str]:
    return dict(re.findall(r"^#([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, re.M))


def _field_for(env_name: str) -> str | None:
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None) or []
        if env_name.lower() == name or env_name in aliases:
            return name
    return None


def test_env_example_shows_each_setting_once() -> None:
    names = re.findall(r"^#([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.M)
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_env_example_names_only_real_settings() -> None:
    unknown = [name for name in _example_defaults() if _field_for(name) is None]
    assert not unknown, f".env.example shows variables Settings does not read: {unknown}"


def test_every_setting_is_in_env_example() -> None:
    shown = {_field_for(name) for name in _example_defaults()}
    absent = sorted(set(Settings.model_fields) - shown)
    assert not absent, f"settings missing from .env.example: {[a.upper() for a in absent]}"


@pytest.mark.parametrize("env_name, shown", sorted(_example_defaults().items()))
def test_env_example_default_is_the_settings_default(env_name: str, shown: str) -> None:
    field = _field_for(env_name)
    assert field is not None
    real = Settings(_env_file=None).model_dump()[field]  # type: ignore[call-arg]
    if shown == "":
        # An empty value documents "unset": the default is None or computed at run time (e.g. WORKERS).
        assert real is None or Settings.model_fields[field].default_factory is not None, (
            f"{env_name} is shown empty but defaults to {real!r}"
        )
        return
    parsed = Settings(_env_file=None, **{field: shown.replace("~", str(Path.home()), 1)}).model_dump()[field]  # type: ignore[call-arg]
    if isinstance(real, SecretStr):
        real, parsed = real.get_secret_value(), parsed.get_secret_value()
    assert parsed == real, f".env.example says {env_name}={shown} but the default is {real!r}"
