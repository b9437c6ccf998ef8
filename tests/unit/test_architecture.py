"""The package's shape: no import cycles among ``router`` modules, and a pure core without Kafka.

The graph is read from the source with :mod:`ast`, so an import hidden inside a function (to keep
``--help`` fast, or to break a circle) counts like one at the top of a module. ``TYPE_CHECKING``
blocks count too: a type-only circle still means two modules know each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROUTER = Path(__file__).resolve().parents[2] / "router"

PURE_CORE = (
    "router.routing",
    "router.routing.simulate",
    "router.classify",
    "router.residency",
    "router.ingest",
    "router.envelope",
    "router.keys",
    "router.audit.record",
    "router.audit.chain",
    "router.quarantine.record",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROUTER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROUTER.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known ``router`` module that ``name`` names (``a.b.C`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every ``router`` module that ``module`` imports, at any depth of its syntax tree."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from pkg import mod`` imports the submodule; ``from mod import name`` the module.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name, modules) if name.startswith("router") else None
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """``router`` module -> the ``router`` modules it imports (a package counts as its ``__init__``).

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so those edges are added too.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = _imports(module, path, modules)
        for target in list(targets):
            parts = target.split(".")
            targets.update(".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in modules)
        targets.discard(module)
        # A package's own __init__ runs before its submodules; that edge is not a circle.
        graph[module] = {t for t in targets if not module.startswith(f"{t}.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    arrows = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "; ".join(arrows)


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    # router.cli.audit imports the config loader inside its handler, to keep --help fast.
    assert "router.config.loader" in graph["router.cli.audit"]


def test_the_cycle_finder_reports_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_router_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles among router modules:\n" + "\n".join(_describe(c, graph) for c in found)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` may import, directly or through others (imports in functions too)."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("module", ["router.routing.simulate", "router.routing.build", "router.pipeline.app",
                                    "router.cli.run", "router.cli.simulate"])
def test_run_and_simulate_do_not_import_the_dev_tools(module: str) -> None:
    tools = {m for m in reachable(import_graph(), module) if m.startswith("router.devtools")}
    tools |= {"router.ingest.samples"} & reachable(import_graph(), module)
    assert not tools, f"{module} may import {sorted(tools)}"


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_does_not_import_a_kafka_client(module: str) -> None:
    probe = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'confluent_kafka'))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]", f"importing {module} loads {result.stdout.strip()}"
