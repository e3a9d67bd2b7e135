"""The project's shape, checked: layers import only downward, no import circle between any two modules, short
functions and modules, one registry each, and `edgeport --help` without torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bottom to top: a package may import its own modules and those of packages below it, never above. Each root
# folder installs as edgeport.<folder> (setup.py); edgeport/ itself is the app layer on top.
LAYERS = ("runtimes", "models", "quantize", "exporters", "parity_tests", "benchmarks", "edgeport")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "edgeport" else ["edgeport", *parts])


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS[:-1] else "edgeport"


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports anywhere in its text (a function-level import is an edge too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    return {m: _imports(m, p, set(sources)) for m, p in sources.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        part.append(top)
                        if top == node:
                            break
                    if len(part) > 1:
                        found.append(sorted(part))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_each_package_imports_only_packages_below_it():
    upward = [f"{m} imports {t}" for m, targets in _graph().items() for t in targets
              if LAYERS.index(_layer(t)) > LAYERS.index(_layer(m))]
    assert not upward, "imports that reach up a layer: " + "; ".join(sorted(upward))


def test_no_import_circle_between_any_two_modules():
    circles = _circles(_graph())
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_function_in_edgeport_code_is_over_60_lines():
    long = []
    for path in _sources().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines: " + "; ".join(long)


def test_no_module_is_over_400_lines():
    big = [f"{p.relative_to(ROOT)} ({n})" for p in _sources().values()
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not big, "modules over 400 lines: " + ", ".join(big)


def test_help_imports_no_heavy_library():
    """Command modules import job packages (torch, converters) inside their handlers, so --help stays instant."""
    code = ("import sys, contextlib, io\nfrom edgeport.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    build_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'coremltools', 'tensorflow', 'onnxruntime', 'executorch', 'ray', "
            "'litert_torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT / "tests")
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("register, args", [
    ("edgeport.runtimes.mil.registry:register_mil_op", ("conv",)),
])
def test_registries_refuse_a_second_entry_of_one_name(register, args):
    import importlib

    module, name = register.split(":")
    decorator = getattr(importlib.import_module(module), name)(*args)
    with pytest.raises(RuntimeError, match="registered twice"):
        decorator(lambda a: None)
