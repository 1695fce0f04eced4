"""The import graph of appgw, and the worker's layers, held by tests.

Every import counts: at module level, under `if TYPE_CHECKING:` and inside
functions, because each one is a dependency a reader has to keep in mind.
Two rules:

- No circles. Modules that import each other, directly or round a loop,
  are one knot that can only be understood, tested and changed whole.
- The worker is in layers, lowest first (LAYERS): a module imports only its
  own layer and the layers below it; codec/ and io/ import nothing of the
  worker outside themselves; nothing in a layer imports the top (main.py,
  services.py), and nothing outside the worker imports the worker except
  the master, which runs it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# The worker's layers, lowest first; a layer may import the ones before it.
LAYERS = ("io", "codec", "policy", "upstream", "tunnel", "exchange", "server")
# Layers that import nothing of the worker but themselves.
SEALED = {"io", "codec"}
TOP = {"appgw.worker", "appgw.worker.main", "appgw.worker.services"}
# Outside the worker, who may import it: the process that runs it.
RUNS_THE_WORKER = {"appgw.master.children"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "appgw").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every appgw module `name` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield from _known(submodule if submodule in MODULES else source)


def _known(name: str) -> Iterator[str]:
    # `import appgw.worker.io.endpoint` or a name inside a module: the module itself.
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    if name.startswith("appgw"):
        yield name


GRAPH = {
    name: {target for target in _imports(name, path) if target != name}
    for name, path in MODULES.items()
}


def knots(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

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
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _short(names: frozenset[str]) -> str:
    return ", ".join(sorted(name.removeprefix("appgw.") for name in names))


# No circle stands today; one that appears fails the test. (A circle that
# must stay a while would be listed here, exactly, so it cannot grow.)
KNOWN_KNOTS: set[frozenset[str]] = set()


def test_the_knots_are_the_known_ones() -> None:
    found = set(knots(GRAPH))
    new = [_short(knot) for knot in found - KNOWN_KNOTS]
    gone = [_short(knot) for knot in KNOWN_KNOTS - found]
    assert not new, f"modules that import each other: {new}"
    assert not gone, f"circles that are gone (take them out of KNOWN_KNOTS): {gone}"


def test_knots_finds_a_circle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert knots(graph) == [frozenset({"a", "b", "c"})]
    assert knots({"a": {"b"}, "b": set()}) == []


def _layer(name: str) -> str | None:
    parts = name.split(".")
    if parts[:2] == ["appgw", "worker"] and len(parts) > 2 and parts[2] in LAYERS:
        return parts[2]
    return None


def test_every_worker_module_is_in_a_layer() -> None:
    loose = [
        name
        for name in MODULES
        if name.startswith("appgw.worker") and name not in TOP and _layer(name) is None
    ]
    assert not loose, f"worker modules outside the layers {LAYERS}: {loose}"


def test_layers_import_only_downwards() -> None:
    wrong = []
    for name, targets in GRAPH.items():
        layer = _layer(name)
        if layer is None:
            continue
        rank = LAYERS.index(layer)
        for target in targets:
            if not target.startswith("appgw.worker"):
                continue
            other = _layer(target)
            if other is None:
                wrong.append(f"{name} imports {target}, the top of the worker")
            elif layer in SEALED and other != layer:
                wrong.append(f"{name} imports {target}: {layer}/ imports only itself")
            elif LAYERS.index(other) > rank:
                wrong.append(f"{name} ({layer}) imports {target} ({other}), a higher layer")
    assert not wrong, "\n".join(sorted(wrong))


def test_only_the_master_imports_the_worker() -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if not name.startswith("appgw.worker") and name not in RUNS_THE_WORKER
        for target in targets
        if target.startswith("appgw.worker")
    )
    assert not wrong, "\n".join(wrong)


def test_imports_are_seen_wherever_they_stand(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import appgw.errors\n"
        "from appgw import logs\n"
        "from appgw.ipc import Ready\n"
        "from . import tls\n"
        "if TYPE_CHECKING:\n"
        "    from appgw.config.model import Config\n"
        "def later():\n"
        "    from appgw.metrics import WorkerMetrics\n"
    )
    found = set(_imports("appgw.probe", module))
    assert found == {
        "appgw.errors",
        "appgw.logs",
        "appgw.ipc",
        "appgw.tls",
        "appgw.config.model",
        "appgw.metrics",
    }
