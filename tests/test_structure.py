"""The project's shape, checked: layers import only downward, no cycles, short functions, one registry each."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bottom to top: a package may import its own modules and those of packages below it, never above
LAYERS = ("runtimes", "models", "quantize", "exporters", "parity_tests", "benchmarks", "edgeport")
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def test_each_package_imports_only_packages_below_it():
    upward = []
    for path in _sources():
        own = path.relative_to(ROOT).parts[0]
        for imported in _imported_packages(path):
            if LAYERS.index(imported) > LAYERS.index(own):
                upward.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not upward, "imports that reach up a layer: " + "; ".join(upward)


def test_no_function_in_edgeport_code_is_over_60_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines: " + "; ".join(long)


def test_no_module_is_over_400_lines():
    big = [f"{p.relative_to(ROOT)} ({n})" for p in _sources() if (n := len(p.read_text().splitlines())) > 400]
    assert not big, "modules over 400 lines: " + ", ".join(big)


@pytest.mark.parametrize("register, args", [
    ("runtimes.mil.ops:register_mil_op", ("conv",)),
])
def test_registries_refuse_a_second_entry_of_one_name(register, args):
    import importlib

    module, name = register.split(":")
    decorator = getattr(importlib.import_module(module), name)(*args)
    with pytest.raises(RuntimeError, match="registered twice"):
        decorator(lambda a: None)
