"""The package's structure, checked from its source (issue 24): no import cycle anywhere (every import counts, a
function's lazy one too; only `if TYPE_CHECKING:` blocks are skipped), the public surface is exactly `__all__`
and no submodule shadows a public name, `import fidrs` loads no network runtime, only the CLI prints, every
exception and warning class lives in errors.py, and only sources/ looks at source classes."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import fidrs
import pytest

PACKAGE = Path(fidrs.__file__).parent
PUBLIC = [
    "Accumulator",
    "BadImagesError",
    "CacheWarning",
    "DecodeError",
    "DuplicateFilesWarning",
    "EmptyInputError",
    "Evaluator",
    "FeatureSet",
    "FidrsError",
    "FidrsWarning",
    "FileTooLargeError",
    "IncompatibleStatsError",
    "InternalError",
    "InvalidInputError",
    "Moments",
    "NotRegularFileError",
    "NumericalError",
    "Options",
    "OutputError",
    "Provenance",
    "RuntimeUnavailableError",
    "SkippedFilesWarning",
    "SmallSampleWarning",
    "Stats",
    "UnknownModeWarning",
    "WeightsError",
    "WeightsHashMismatchError",
    "WeightsUnavailableError",
    "__version__",
    "backbones",
    "cmmd",
    "distributed",
    "feature_set",
    "features",
    "fid_confidence",
    "frechet_distance",
    "inception_score",
    "kid",
    "memorization",
    "metrics",
    "precision_recall",
    "register_backbone",
    "register_metric",
    "register_source",
    "score",
    "score_details",
    "sources",
    "stats",
]
SUBPACKAGES = {"backbones", "distributed", "metrics", "sources"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, modules: set[str]) -> set[str]:
    """The fidrs modules `module` imports anywhere in its body (functions included), TYPE_CHECKING aside."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "fidrs")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "fidrs":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in modules and m != module}


def test_no_import_cycle_anywhere_in_the_package():
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert graph["fidrs.evaluator"] and graph["fidrs.cli.commands"]  # the walk sees imports at all
    colour: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def walk(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if colour.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in colour:
                walk(n)
        stack.pop()
        colour[m] = 2

    for m in sorted(graph):
        if m not in colour:
            walk(m)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_public_surface_is_exactly_all_and_no_submodule_shadows_a_name():
    assert fidrs.__all__ == PUBLIC
    before = {name: getattr(fidrs, name) for name in PUBLIC}
    for info in pkgutil.walk_packages([str(PACKAGE)], "fidrs."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)  # importing every module must not rebind a public name
    for name in PUBLIC:
        value = getattr(fidrs, name)
        assert value is before[name], f"fidrs.{name} changed when the submodules were imported"
        is_module = type(value).__name__ == "module"
        assert is_module == (name in SUBPACKAGES), f"fidrs.{name} is {'a module' if is_module else 'not a module'}"
    for name in ("stats", "feature_set", "kid", "score"):
        assert callable(getattr(fidrs, name)), name


_IMPORTS = """
import json, sys
import fidrs
fidrs.Options(); fidrs.Evaluator(); fidrs.Stats; fidrs.metrics.metric_names(); fidrs.backbones.names()
import fidrs.cli.parser
fidrs.cli.parser.build_parser()
heavy = ("onnx", "onnxruntime", "scipy", "fsspec", "ray", "matplotlib")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def test_import_fidrs_and_building_the_cli_load_no_network_runtime():
    out = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def _calls(tree: ast.AST, name: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def test_only_the_cli_prints():
    printing = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "cli" and (lines := _calls(ast.parse(path.read_text()), "print"))
    }
    assert printing == {}


def test_every_exception_and_warning_class_is_in_errors():
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if any(b.endswith(("Error", "Exception", "Warning")) for b in bases):
                    elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert elsewhere == []


def test_each_exception_carries_its_exit_code():
    from fidrs.errors import exit_code

    bad_input = [fidrs.InvalidInputError, fidrs.DecodeError, fidrs.IncompatibleStatsError, fidrs.WeightsError]
    bad_input += [fidrs.BadImagesError, fidrs.EmptyInputError, fidrs.NotRegularFileError, fidrs.OutputError]
    for cls in bad_input:
        assert cls.exit_code == 2, cls
    for cls in (fidrs.FidrsError, fidrs.NumericalError, fidrs.RuntimeUnavailableError, fidrs.InternalError):
        assert cls.exit_code == 3, cls
    assert exit_code(fidrs.BadImagesError([("x", "y")])) == 2 and exit_code(RuntimeError()) == 3


SOURCE_CLASSES = {"ImageFiles", "ImageArray", "ZipImages", "RemoteFiles", "StatsFile", "Source"}


def test_no_isinstance_on_source_classes_outside_sources():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "sources" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & SOURCE_CLASSES:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("command", [["--version"], ["score", "--help"]])
def test_the_cli_starts_without_a_network_runtime(command):
    code = "import sys\nfrom fidrs.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    code += "print('heavy:', sorted(m for m in ('onnx', 'onnxruntime', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=120)
    assert "heavy: []" in out.stdout, out.stdout + out.stderr
