"""No import cycles among rnnlab's modules.

Every `import` statement of every module under rnnlab/ is read with ast,
module-level and function-level alike (a deferred import is still a
dependency, and a cycle hidden inside a function is still a cycle), and
resolved to the rnnlab module it loads: `from . import x` and
`from rnnlab.a import x` are the module rnnlab.a.x where that is a module,
else rnnlab.a. A package's own __init__ is not counted as imported by its
submodules (Python runs it first, but it is the package's table of contents,
not a dependency). The import graph must have no cycle.
"""

import ast
from pathlib import Path

import rnnlab

ROOT = Path(rnnlab.__file__).parent



def module_name(path: Path) -> str:
    parts = ("rnnlab",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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


def test_the_walker_sees_imports_and_cycles():
    graph = import_graph()
    assert "rnnlab.models.lm" in graph["rnnlab.models"]  # from rnnlab.models.lm import ...
    assert "rnnlab.cell_registry" in graph["rnnlab.models.stack"]  # from rnnlab import cell_registry
    assert "rnnlab.numpy.cells" in graph["rnnlab.numpy.model"] or "rnnlab.numpy.layers" in graph["rnnlab.numpy.model"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []
