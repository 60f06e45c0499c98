"""The layout, read from the code's own imports (every ``import``, at module level or inside a function).

The stack, bottom to top: ``core → storage → generation → writing → arena / evaluation → training →
webapp → lwz_cli``. A package may import its own modules and those of the floors below it,
never above; ``arena`` and ``evaluation`` share a floor and do not import each other.
Nothing imports ``lwz_cli``, the top floor. No files import each other in a circle, counting
imports inside functions as well as at module level.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict

import pytest

from tests.conftest import REPO_ROOT

FLOORS = {"core": 0, "storage": 1, "generation": 2, "writing": 3, "arena": 4, "evaluation": 4, "training": 5,
          "webapp": 6, "lwz_cli": 7}
HEAVY = ("torch", "gradio", "trl", "transformers", "vllm")


def _submodule(module: str, name: str) -> str:
    """``from pkg import mod`` imports the module ``pkg.mod`` when that file exists, else ``pkg``."""
    candidate = REPO_ROOT.joinpath(*module.split("."), name)
    if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
        return f"{module}.{name}"
    return module


def project_imports() -> list[tuple[str, str]]:
    """``(importer, imported)`` for every import of a project module, wherever the import sits."""
    found = []
    for package in FLOORS:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [_submodule(node.module, alias.name) for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    if name.split(".")[0] in FLOORS:
                        found.append((module, name))
    return found


def test_no_import_runs_up_the_stack():
    upward = []
    for importer, imported in project_imports():
        mine, theirs = importer.split(".")[0], imported.split(".")[0]
        if mine == theirs:
            continue
        if FLOORS[theirs] > FLOORS[mine] or (FLOORS[theirs] == FLOORS[mine]):
            upward.append(f"{importer} imports {imported}")
    assert upward == []


def import_circles() -> list[list[str]]:
    """Every set of files that import each other in a circle (strongly connected components of the
    file graph), counting every import, inside functions too: a circle through a function-level
    import is still two files that cannot be read, tested or moved apart."""
    graph = defaultdict(set)
    for importer, imported in project_imports():
        if importer != imported:
            graph[importer].add(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle_between_files():
    assert import_circles() == []


@pytest.mark.parametrize("package", [p for p in FLOORS])
def test_importing_a_package_loads_nothing_heavy(package):
    """Every module of the package imports without torch, gradio, trl, transformers or vllm."""
    modules = sorted(".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (REPO_ROOT / package).rglob("*.py") if "migrations" not in p.parts)
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
