"""generation/ below the stored workflow: it imports nothing from storage/ (so it writes nothing
to the database). That generation/ and writing/ form no circle between files, counting every
import, is ``tests/test_layering.py``'s check over the whole tree."""

from __future__ import annotations

from tests.test_layering import project_imports


def test_generation_imports_nothing_from_storage():
    assert [f"{a} imports {b}" for a, b in project_imports()
            if a.split(".")[0] == "generation" and b.split(".")[0] == "storage"] == []
