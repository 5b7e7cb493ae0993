"""Compare the type stubs `python/fidrs/_fidrs.pyi` with the built native module `fidrs._fidrs`.

Checked: the module's names (every function, class and constant, and nothing else, is in the stubs), each
function's and method's parameters from PyO3's `__text_signature__` (names, order, positional/keyword-only,
which have defaults and, where the signature shows it, the default's value), each class's members (methods,
properties, static methods) and its bases, and every constructor against the stub's `__init__`.

Usage: python scripts/check_stubs.py [STUB]     exit 0 when they agree, 1 with one line per difference.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parents[1] / "python" / "fidrs" / "_fidrs.pyi"
# Names every extension module has, which no stub declares.
MODULE_DUNDERS = {"__doc__", "__file__", "__loader__", "__name__", "__package__", "__spec__", "__all__"}


def _stub_parameters(node: ast.FunctionDef, method: bool) -> list[tuple[str, str, object]]:
    """[(name, kind, default)] with kind "positional" or "keyword" and default `inspect.Parameter.empty`,
    a literal value, or `...` (a default the stub gives as an expression)."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if method and positional:
        positional = positional[1:]  # self
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + list(args.defaults)
    rows = [(a.arg, "positional", d) for a, d in zip(positional, defaults)]
    rows += [
        (a.arg, "keyword", inspect.Parameter.empty if d is None else d)
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]
    out = []
    for name, kind, default in rows:
        if isinstance(default, ast.AST):
            try:
                default = ast.literal_eval(default)
            except ValueError:
                default = ...
        out.append((name, kind, default))
    return out


def _native_parameters(obj, method: bool) -> list[tuple[str, str, object]] | None:
    text = getattr(obj, "__text_signature__", None)
    if text is None:
        return None
    signature = inspect.signature(obj)
    rows = []
    for i, p in enumerate(signature.parameters.values()):
        if method and i == 0 and p.name in ("self", "$self", "cls", "type", "$type"):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            rows.append((p.name, "variadic", p.default))
            continue
        kind = "keyword" if p.kind == p.KEYWORD_ONLY else "positional"
        rows.append((p.name, kind, p.default))
    return rows


def _compare_parameters(where: str, native, stub) -> list[str]:
    if native is None:
        return [f"{where}: the native object has no __text_signature__ to compare with"]
    problems = []
    if [(n, k) for n, k, _ in native] != [(n, k) for n, k, _ in stub]:
        show = lambda rows: ", ".join(f"{'*' if k == 'keyword' else ''}{n}" for n, k, _ in rows)  # noqa: E731
        return [f"{where}: parameters ({show(native)}) in the module but ({show(stub)}) in the stub"]
    for (name, _, nd), (_, _, sd) in zip(native, stub):
        if (nd is inspect.Parameter.empty) != (sd is inspect.Parameter.empty):
            has = "has" if nd is not inspect.Parameter.empty else "has no"
            problems.append(f"{where}: parameter {name} {has} a default in the module, not in the stub")
        elif nd not in (inspect.Parameter.empty, ...) and sd is not ... and nd != sd:
            problems.append(f"{where}: parameter {name} defaults to {nd!r} in the module but {sd!r} in the stub")
    return problems


def _decorators(node: ast.FunctionDef) -> set[str]:
    return {d.id for d in node.decorator_list if isinstance(d, ast.Name)}


def _compare_class(name: str, cls: type, node: ast.ClassDef) -> list[str]:
    problems = []
    stub_bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
    native_bases = [b.__name__ for b in cls.__bases__ if b is not object]
    if stub_bases != native_bases:
        problems.append(f"class {name}: bases {native_bases} in the module but {stub_bases} in the stub")
    if issubclass(cls, BaseException):
        return problems  # exceptions: no members of their own to compare
    members = {n: m for n, m in vars(cls).items() if not n.startswith("_")}
    stub_members = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")}
    for missing in sorted(set(members) - set(stub_members)):
        problems.append(f"class {name}: {missing} is in the module but not in the stub")
    for extra in sorted(set(stub_members) - set(members)):
        problems.append(f"class {name}: {extra} is in the stub but not in the module")
    for member in sorted(set(members) & set(stub_members)):
        native, stub = members[member], stub_members[member]
        where = f"{name}.{member}"
        is_property = inspect.isdatadescriptor(native) and not callable(native)
        if is_property != ("property" in _decorators(stub)):
            problems.append(f"{where}: a property in {'the module' if is_property else 'the stub'} only")
            continue
        if is_property:
            continue
        is_static = isinstance(native, staticmethod)
        if is_static != ("staticmethod" in _decorators(stub)):
            problems.append(f"{where}: a static method in {'the module' if is_static else 'the stub'} only")
            continue
        target = getattr(cls, member)
        problems += _compare_parameters(
            where, _native_parameters(target, method=not is_static), _stub_parameters(stub, method=not is_static)
        )
    init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    constructor = _native_parameters(cls, method=False)
    if init is None and constructor is not None:
        problems.append(f"class {name}: the module has a constructor {cls.__text_signature__}, the stub no __init__")
    elif init is not None:
        problems += _compare_parameters(f"{name}()", constructor, _stub_parameters(init, method=True))
    return problems


def differences(module, stub_source: str) -> list[str]:
    """Every difference between the module and the stub source, one line each (empty: they agree)."""
    tree = ast.parse(stub_source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    constants = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    declared = set(functions) | set(classes) | constants
    present = {n for n in dir(module) if n not in MODULE_DUNDERS}
    problems = [f"{n}: in the module but not in the stub" for n in sorted(present - declared)]
    problems += [f"{n}: in the stub but not in the module" for n in sorted(declared - present)]
    for name in sorted(present & declared):
        obj = getattr(module, name)
        if name in functions:
            if not callable(obj) or isinstance(obj, type):
                problems.append(f"{name}: a function in the stub but a {type(obj).__name__} in the module")
            else:
                problems += _compare_parameters(
                    f"{name}()", _native_parameters(obj, method=False), _stub_parameters(functions[name], False)
                )
        elif name in classes:
            if not isinstance(obj, type):
                problems.append(f"{name}: a class in the stub but a {type(obj).__name__} in the module")
            else:
                problems += _compare_class(name, obj, classes[name])
        elif callable(obj) or isinstance(obj, type):
            problems.append(f"{name}: a constant in the stub but a {type(obj).__name__} in the module")
    return problems


def main() -> int:
    stub = Path(sys.argv[1]) if len(sys.argv) > 1 else STUB
    problems = differences(importlib.import_module("fidrs._fidrs"), stub.read_text(encoding="utf-8"))
    for line in problems:
        print(line)
    if problems:
        print(f"{stub}: {len(problems)} difference(s) from the built fidrs._fidrs", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
