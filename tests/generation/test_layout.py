"""generation/ below the stored workflow: it imports nothing from storage/ (so it writes nothing
to the database), and generation/ and writing/ form no circle between files, counting every
import, inside functions too."""

from __future__ import annotations

from collections import defaultdict

from tests.test_layering import project_imports


def test_generation_imports_nothing_from_storage():
    assert [f"{a} imports {b}" for a, b, _ in project_imports()
            if a.split(".")[0] == "generation" and b.split(".")[0] == "storage"] == []


def test_generation_and_writing_have_no_file_circle():
    graph = defaultdict(set)
    for importer, imported, _ in project_imports():
        if importer != imported and {importer.split(".")[0], imported.split(".")[0]} <= {"generation", "writing"}:
            graph[importer].add(imported)
    circles = []

    def visit(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                circles.append(" → ".join(path[path.index(nxt):] + [nxt]))
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for node in sorted(graph):
        visit(node, [node])
    assert circles == []


def test_the_stored_workflow_sits_between_generation_and_the_arena():
    from tests.test_layering import FLOORS

    assert FLOORS["generation"] < FLOORS["writing"] < min(FLOORS["arena"], FLOORS["evaluation"])
