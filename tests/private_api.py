"""Finds uses of aiohttp's private API in source code, by reading it (AST).

A private name is one with a leading underscore (not a dunder) that aiohttp's own
classes define: methods and class attributes, `__slots__`, and the `self._x`
attributes their methods assign. Three kinds of use are reported:

- importing a private module or name from aiohttp (`aiohttp._http_writer`);
- in a class deriving from an aiohttp class (directly, or through a class of ours):
  defining, assigning or reading a private name its aiohttp bases have (an override
  of `_make_server`, `self._send_headers_immediately = False`, `self._kwargs`);
- anywhere, `x._name` where `_name` is private on some aiohttp class of `aiohttp`,
  `aiohttp.web`, `aiohttp.abc` or `aiohttp.http` (`request._prepare_hook(...)`), unless
  a class of the checked code defines that name itself (then it is read on our
  object: `response._finish()` on the upstream response) or the receiver is `self`
  in a class of ours.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PUBLIC_MODULES = ("aiohttp", "aiohttp.web", "aiohttp.abc", "aiohttp.http")
# A named tuple's own API, spelled with an underscore so as not to clash with fields.
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_aiohttp(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "aiohttp"


def self_attributes(cls: type) -> set[str]:
    """The `self._x` names a class's own methods assign."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
    return names


@functools.cache
def private_names(cls: type) -> frozenset[str]:
    """The private names of `cls`'s aiohttp classes (itself and its bases)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if not is_aiohttp(klass):
            continue
        names.update(vars(klass))
        slots = vars(klass).get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
        names.update(self_attributes(klass))
    return frozenset(n for n in names if is_private(n)) - NAMEDTUPLE_API


@functools.cache
def aiohttp_private() -> frozenset[str]:
    """Every private name of every class the public aiohttp modules offer."""
    names: set[str] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for attr in dir(module):
            value = getattr(module, attr, None)
            if isinstance(value, type) and is_aiohttp(value):
                names |= private_names(value)
    return frozenset(names)


def resolve(path: str) -> object | None:
    """The object a dotted path names (`aiohttp.web.StreamResponse`), if importable."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


@dataclass(frozen=True)
class Use:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


class Module:
    """One source file: its import aliases and its classes."""

    def __init__(self, source: str, path: str, own_names: frozenset[str]) -> None:
        self.tree = ast.parse(source)
        self.path = path
        self.own_names = own_names
        self.aliases: dict[str, str] = {}
        self.classes = {node.name: node for node in ast.walk(self.tree)
                        if isinstance(node, ast.ClassDef)}

    def dotted(self, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return self.aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.dotted(expr.value)
            return f"{base}.{expr.attr}" if base else None
        if isinstance(expr, ast.Subscript):      # a generic base: Base[T]
            return self.dotted(expr.value)
        return None

    def base_private(self, node: ast.ClassDef, seen: frozenset[str] = frozenset()
                     ) -> frozenset[str] | None:
        """The private names of `node`'s aiohttp bases; None when it has none."""
        found: set[str] | None = None
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in self.classes \
                    and base.id not in seen and base.id not in self.aliases:
                names = self.base_private(self.classes[base.id], seen | {node.name})
            else:
                dotted = self.dotted(base)
                obj = resolve(dotted) if dotted else None
                names = None
                if isinstance(obj, type) and any(is_aiohttp(k) for k in obj.__mro__):
                    names = private_names(obj)
            if names is not None:
                found = (found or set()) | names
        return frozenset(found) if found is not None else None

    def uses(self) -> Iterator[Use]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[(alias.asname or alias.name).split(".")[0]] = \
                        alias.name if alias.asname else alias.name.split(".")[0]
                    if alias.name.split(".")[0] == "aiohttp" and any(
                            is_private(p) for p in alias.name.split(".")):
                        yield Use(self.path, node.lineno, f"imports {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    if node.module.split(".")[0] == "aiohttp" and (
                            is_private(alias.name)
                            or any(is_private(p) for p in node.module.split("."))):
                        yield Use(self.path, node.lineno,
                                  f"imports {alias.name} from {node.module}")
        inside: set[int] = set()       # `self` nodes already judged in a subclass
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef):
                names = self.base_private(node)
                if names is not None:
                    yield from self.subclass_uses(node, names, inside)
        ours = {id(n) for cls in self.classes.values() if self.base_private(cls) is None
                for n in ast.walk(cls)
                if isinstance(n, ast.Name) and n.id in ("self", "cls")}
        aio = aiohttp_private()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and node.attr in aio \
                    and node.attr not in self.own_names and id(node.value) not in ours \
                    and id(node.value) not in inside:
                yield Use(self.path, node.lineno,
                          f"reads {node.attr}, private on aiohttp's classes")

    def subclass_uses(self, node: ast.ClassDef, names: frozenset[str],
                      inside: set[int]) -> Iterator[Use]:
        what = f"class {node.name} (an aiohttp subclass)"
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name in names:
                yield Use(self.path, stmt.lineno, f"{what} overrides {stmt.name}")
            targets: Iterable[ast.expr] = ()
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, ast.AnnAssign):
                targets = (stmt.target,)
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    yield Use(self.path, stmt.lineno, f"{what} sets {target.id}")
                if isinstance(target, ast.Name) and target.id == "__slots__":
                    for const in ast.walk(stmt.value):  # type: ignore[union-attr]
                        if isinstance(const, ast.Constant) and const.value in names:
                            yield Use(self.path, stmt.lineno,
                                      f"{what} declares slot {const.value}")
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) \
                    and sub.value.id == "self":
                inside.add(id(sub.value))
                if sub.attr in names:
                    verb = "sets" if isinstance(sub.ctx, ast.Store) else "reads"
                    yield Use(self.path, sub.lineno, f"{what} {verb} self.{sub.attr}")


def own_names(sources: Iterable[str]) -> frozenset[str]:
    """Private names the checked code's own (non-aiohttp) classes define."""
    names: set[str] = set()
    for source in sources:
        module = Module(source, "", frozenset())
        for _ in module.uses():       # fills the aliases the class check needs
            pass
        for cls in module.classes.values():
            if module.base_private(cls) is not None:
                continue
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
    return frozenset(n for n in names if is_private(n))


def private_uses(files: dict[str, str]) -> list[Use]:
    """Every use of aiohttp's private API in `files` (path → source)."""
    own = own_names(files.values())
    found: list[Use] = []
    for path, source in sorted(files.items()):
        found.extend(Module(source, path, own).uses())
    return found


def package_sources(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root.parent)): p.read_text() for p in sorted(root.rglob("*.py"))}
