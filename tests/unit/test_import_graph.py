"""The package's layering, checked on the source: no import circles between app's modules, and the lower layers
never reach up into the HTTP layer (app.api). Every import counts, also those inside functions (deferred for
start-up time, they still couple the modules); only `if TYPE_CHECKING:` blocks are left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
# Packages that must not import app.api (nor anything under it).
BELOW_THE_API = ("app.observability", "app.conversion", "app.jobs", "app.pipeline", "app.runtime", "app.storage",
                 "app.vlm", "app.chunking", "app.compat")


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        # The longest app module that `name` names or lies in (`app.jobs.files.job_dir` -> `app.jobs.files`).
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if (target := resolve(alias.name)) is not None:
                        found.add(target)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module if is_package else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in child.names:
                    if (target := resolve(f"{base}.{alias.name}")) is not None:
                        found.add(target)
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in APP.rglob("*.py")}
    known = set(paths)
    return {
        name: _imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
        for name, path in paths.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's strongly connected components: any component of two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("import app.api.deps\nif TYPE_CHECKING:\n    from app.jobs import store\n"
                     "def f():\n    from .files import x\n")
    known = {"app.api.deps", "app.jobs.store", "app.jobs.files", "app.jobs.manager"}
    assert _imports(tree, "app.jobs.manager", False, known) == {"app.api.deps", "app.jobs.files"}


def test_app_has_no_import_circle() -> None:
    assert _cycles(import_graph()) == []


@pytest.mark.parametrize("package", BELOW_THE_API)
def test_lower_layers_never_import_the_api(package: str) -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items() if _within(module, package)
        for target in targets if _within(target, "app.api")
    )
    assert upward == []


def test_the_page_algorithms_never_import_the_runtime() -> None:
    """app/pipeline is the pure side of the split: one page in, one PageResult out. The pool, whole documents and
    intake (app/runtime) drive it, never the other way round."""
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items() if _within(module, "app.pipeline")
        for target in targets if _within(target, "app.runtime")
    )
    assert upward == []


# Libraries one module owns: every call into them goes through it (pdfium is not thread-safe; its backend holds the
# one lock). Every import counts here, also under `if TYPE_CHECKING:` (annotations name the owner's aliases).
OWNED_LIBRARIES = {"pypdfium2": "app.pipeline.pdfium_backend"}


def _library_importers(library: str) -> set[str]:
    importers = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name == library or name.startswith(library + ".") for name in names):
                importers.add(_module_name(path))
    return importers


@pytest.mark.parametrize(("library", "owner"), sorted(OWNED_LIBRARIES.items()))
def test_an_owned_library_is_imported_by_its_owner_alone(library: str, owner: str) -> None:
    assert _library_importers(library) == {owner}
