"""No import cycles among proxy's modules, nor among its packages.

Packages are `proxy`'s subpackages and top-level modules (`proxy.config`,
`proxy.http`, `proxy.explain`, `proxy.edge`…): `proxy.config.load` importing
`proxy.http.hosts` while `proxy.http.route_table` imports `proxy.config.model` is a
cycle of packages although no module imports itself back. Each cycle means a package
cannot be read, tested or moved without the other.

Every `import` and `from … import` counts, wherever it stands: inside a function (a
cycle hidden from import time is still a cycle) and under `if TYPE_CHECKING:` (the
types are the coupling; the guard only keeps the import from running, and counting it
keeps the guard from being the way a cycle is kept).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Imports allowed to close a cycle while it is being taken apart: (module, imported).
# Delete a pair once its import is gone. (None now: the cycles through `Edge` went
# with the request path's typed ports, issue 11.)
BEING_REMOVED: frozenset[tuple[str, str]] = frozenset()

Imports = Mapping[str, Mapping[str, int]]     # module -> imported module -> first line


def module_imports(root: Path, top: str) -> dict[str, dict[str, int]]:
    """Every module under `root/top` and the modules of `top` it imports."""
    modules: dict[str, Path] = {}
    for path in (root / top).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    found: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = found.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                # `from pkg import mod` imports the module; `from mod import name`, mod
                targets = [base] + [f"{base}.{a.name}" for a in node.names
                                    if f"{base}.{a.name}" in modules]
            else:
                continue
            for target in targets:
                while target and target not in modules:     # `import a.b.c` of a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    out.setdefault(target, node.lineno)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def graph(imports: Imports, level: str, allowed: Iterable[tuple[str, str]] = ()
          ) -> dict[str, dict[str, str]]:
    """node -> imported node -> the import that makes the edge (`module:line`)."""
    skip = set(allowed)
    node = package_of if level == "package" else (lambda m: m)
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    for module, targets in sorted(imports.items()):
        for target, line in sorted(targets.items()):
            a, b = node(module), node(target)
            if (module, target) not in skip and a != b:
                edges[a].setdefault(b, f"{module}:{line} imports {target}")
    return edges


def cycles(edges: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """One cycle per strongly connected component, as the imports that close it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while (w := stack.pop()) != v:
                component.add(w)
            components.append(component | {v})

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_shortest_cycle(edges, c) for c in components if len(c) > 1]


def _shortest_cycle(edges: Mapping[str, Mapping[str, str]], component: set[str]) -> list[str]:
    start = min(component)
    came_from: dict[str, str] = {}
    queue = [start]
    for v in queue:                 # breadth first, so the cycle shown is a shortest one
        for w in sorted(edges[v]):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                path.reverse()
                return [edges[a][b] for a, b in zip(path, path[1:] + [start])]
            if w in component and w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")


def test_proxys_packages_import_each_other_in_one_direction_only() -> None:
    assert cycles(graph(module_imports(REPO, "proxy"), "package", BEING_REMOVED)) == []


def test_proxys_modules_import_each_other_in_one_direction_only() -> None:
    assert cycles(graph(module_imports(REPO, "proxy"), "module", BEING_REMOVED)) == []


def test_being_removed_lists_only_imports_still_made() -> None:
    """A pair whose import is gone is deleted from BEING_REMOVED, so it stays gone."""
    imports = module_imports(REPO, "proxy")
    assert sorted(p for p in BEING_REMOVED if p[1] not in imports.get(p[0], {})) == []


def test_a_cycle_is_found_however_the_import_is_written(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": "from pkg.b import two\n",
        "pkg/a/three.py": "from . import one\n",
        "pkg/b/__init__.py": "",
        "pkg/b/two.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from ..a.three import X\n",
        "pkg/c.py": "def late():\n    import pkg.a.one\n",
        "pkg/d.py": "import pkg.c.late_name\nfrom pkg import c\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    imports = module_imports(tmp_path, "pkg")
    assert imports["pkg.a.three"] == {"pkg.a": 1, "pkg.a.one": 1}
    assert imports["pkg.b.two"] == {"pkg.a.three": 3}
    assert imports["pkg.c"] == {"pkg.a.one": 2}
    assert imports["pkg.d"] == {"pkg.c": 1, "pkg": 2}
    assert cycles(graph(imports, "package")) == [
        ["pkg.a.one:1 imports pkg.b", "pkg.b.two:3 imports pkg.a.three"]]
    assert cycles(graph(imports, "module")) == [
        ["pkg.a.one:1 imports pkg.b.two", "pkg.b.two:3 imports pkg.a.three",
         "pkg.a.three:1 imports pkg.a.one"]]
    assert cycles(graph(imports, "package", {("pkg.b.two", "pkg.a.three")})) == []
