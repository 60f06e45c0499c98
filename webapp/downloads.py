"""Where the Write tab's download files live, and whose each one is.

A download is written to ``<folder>/<owner_id>/<random>/<stem>.<suffix>`` inside Gradio's own
cache (Gradio serves a file where it is written), so the owner's id is part of every path it
serves; :class:`webapp.middleware.DownloadOwnership` reads it back with :func:`download_owner`.
The two functions are the two halves of one path layout, kept together.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Optional


def write_downloads(folder: Path, *, owner_id: int, stem: str, texts: dict[str, str]) -> dict[str, str]:
    """Write the ``.md`` and ``.txt`` files into ``folder/<owner_id>/<random>/``; returns their paths by suffix."""
    target = folder / str(int(owner_id)) / uuid.uuid4().hex
    target.mkdir(parents=True)
    paths = {}
    for suffix, text in texts.items():
        path = target / f"{stem}.{suffix}"
        path.write_text(text, encoding="utf-8")
        paths[suffix] = str(path)
    return paths


def download_owner(url_path: str, folder: Path) -> Optional[int]:
    """The owner id of the download that ``url_path`` (``/gradio_api/file=...``, decoded) asks for; else None.

    The path is normalised first (``.``, ``..``, doubled slashes), so no spelling of a download's
    path escapes the check; a path into the downloads folder without an owner gives -1 (nobody).
    """
    route = url_path.removeprefix("/gradio_api")
    if not route.startswith(("/file=", "/file/")):  # Gradio's file route and its older spelling
        return None
    wanted = os.path.normpath("/" + route[len("/file="):].lstrip("/"))
    root = os.path.normpath(str(folder))
    if wanted != root and not wanted.startswith(root + "/"):
        return None
    head = wanted[len(root) + 1:].split("/")[0]
    return int(head) if head.isdigit() else -1
