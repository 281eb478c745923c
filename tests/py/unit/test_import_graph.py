"""The import graph of python/benchrun has no cycles.

Read from the source with ast, not by importing: an edge is an import that runs when the module is
imported (module level, including class bodies and module-level if/try blocks, but not function
bodies and not `if TYPE_CHECKING:` blocks). A package's own __init__ is not an implicit edge of its
submodules (every submodule would otherwise be in a cycle with the package that lists it).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3] / "python"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of every module of ``package`` under ``root`` (an extension
    module by its .pyi stub)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")) + sorted((root / package).rglob("*.pyi")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.setdefault(".".join(parts), path)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The import statements among ``body`` that run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_nodes(block)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _import_time_nodes(node.body)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that importing ``name`` imports directly."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _import_time_nodes(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base: Optional[str] = node.module
            if node.level:
                pkg = name.split(".")
                if not is_package:
                    pkg.pop()
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            assert base is not None
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name`, mod.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        out.update(t for t in targets if t in modules and t != name)
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # Shortest path from start back to start inside the component (breadth-first).
        prev: dict[str, str] = {}
        queue = [start]
        found = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(graph[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            queue = nxt
        path = [start]
        v = found
        while v is not None and v != start:
            path.append(v)
            v = prev.get(v)
        cycles.append([start] + path[1:][::-1] + [start])
    return cycles


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_benchrun_has_no_import_cycles():
    graph = import_graph(ROOT, "benchrun")
    assert "benchrun.cli.main" in graph and graph["benchrun.cli.main"], "graph not read"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in python/benchrun:\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_finds_and_names_a_cycle(tmp_path: Path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\n",
            "pkg/_ext.pyi": "def g() -> None: ...\n",
            "pkg/g.py": "from pkg import _ext\n",  # the extension module, not the package
            "pkg/a.py": "from pkg import b\n\ndef f():\n    from pkg import c\n",
            "pkg/b.py": "from .sub import d\n",
            "pkg/c.py": "import pkg.a\n",  # a -> c only inside a function: no cycle
            "pkg/sub/__init__.py": "",
            "pkg/sub/d.py": "try:\n    from ..a import f\nexcept ImportError:\n    pass\n",
            "pkg/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.f\n",
            "pkg/f.py": "class K:\n    import pkg.e\n",  # e -> f only for type checking
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.e"] == set() and graph["pkg.f"] == {"pkg.e"}
    assert graph["pkg.g"] == {"pkg._ext"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.d", "pkg.a"]]


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"a"}}, [["a", "a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}, [["a", "b", "a"]]),
    ],
)
def test_find_cycles(graph, expected):
    assert find_cycles(graph) == expected
