"""The layout, read from the code's own imports (every ``import``, at module level or inside a function).

The stack, bottom to top: ``core → storage → generation → writing → arena / evaluation → training →
webapp → lwz_cli``. A package may import its own modules and those of the floors below it,
never above; ``arena`` and ``evaluation`` share a floor and do not import each other.
Nothing imports ``lwz_cli``, the top floor. Module-level imports form no circle.
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


def project_imports() -> list[tuple[str, str, bool]]:
    """``(importer, imported, at_module_level)`` for every import of a project module."""
    found = []
    for package in FLOORS:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top_level = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    if name.split(".")[0] in FLOORS:
                        found.append((module, name, id(node) in top_level))
    return found


def test_no_import_runs_up_the_stack():
    upward = []
    for importer, imported, _ in project_imports():
        mine, theirs = importer.split(".")[0], imported.split(".")[0]
        if mine == theirs:
            continue
        if FLOORS[theirs] > FLOORS[mine] or (FLOORS[theirs] == FLOORS[mine]):
            upward.append(f"{importer} imports {imported}")
    assert upward == []


def test_no_module_level_import_circle():
    graph = defaultdict(set)
    for importer, imported, top_level in project_imports():
        if top_level and importer != imported:
            graph[importer].add(imported)
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" → ".join(path[path.index(nxt):] + [nxt]) if nxt in path else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


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
