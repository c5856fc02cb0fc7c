"""The package's layout rules, read from its source: no module imports another module's private
name, no import circle (an import anywhere in a module counts, lazy and type-only ones too),
and a small package root."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_batches"
#: At most this many modules directly in the package root (subsystems live in folders).
MAX_ROOT_MODULES = 12


def module_names() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    names: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module an ``import from`` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_name_imports(module: str, tree: ast.Module) -> list[str]:
    """``from <another module> import _name`` anywhere in ``module`` (submodules excluded)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = absolute(module, node)
        if not source.startswith(PACKAGE) or source == module:
            continue
        for alias in node.names:
            name = alias.name
            private = name.startswith("_") and not name.startswith("__")
            if private and f"{source}.{name}" not in MODULES:
                found.append(f"{module} imports {name} from {source}")
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere: when it loads, under
    ``TYPE_CHECKING`` or inside a function (a lazy import is still a dependency)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = absolute(module, node)
                targets = [f"{source}.{alias.name}" for alias in node.names] + [source]
            for target in targets:
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target.startswith(PACKAGE) and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def is_ancestor_package(parent: str, child: str) -> bool:
    return child.startswith(parent + ".")


def test_no_module_imports_another_module_s_private_name() -> None:
    found: list[str] = []
    for module, path in MODULES.items():
        found += private_name_imports(module, ast.parse(path.read_text(encoding="utf-8")))
    assert found == []


def test_no_import_circle() -> None:
    graph = import_graph()
    # A package's __init__ importing its own submodules is how a package exposes its face; the
    # submodules loading their package first is Python's own order, not a circle of ours.
    graph = {
        module: {t for t in targets if not is_ancestor_package(t, module)}
        for module, targets in graph.items()
    }
    assert circles(graph) == []


def test_the_package_root_keeps_few_modules() -> None:
    root = [p.name for p in (ROOT / PACKAGE).glob("*.py") if p.name != "__init__.py"]
    assert len(root) <= MAX_ROOT_MODULES, sorted(root)


def test_the_checks_see_a_private_import_and_a_circle() -> None:
    """The rules above catch what they are for (so a silent parser cannot pass them)."""
    module = f"{PACKAGE}.operators.batch"
    tree = ast.parse("from airflow_provider_batches.utils.policy import _hidden\n")
    assert private_name_imports(module, tree) == [
        f"{module} imports _hidden from {PACKAGE}.utils.policy"
    ]
    relative = ast.parse("from ._shards import submit_shards\nfrom . import _shards\n")
    assert private_name_imports(module, relative) == []
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_graph()[f"{PACKAGE}.operators.batch"] >= {f"{PACKAGE}.hooks.batch"}
