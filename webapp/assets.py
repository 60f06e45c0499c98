"""The page's own static files (``webapp/static/``, shipped in the wheel): where they are and their text.

The server serves the folder at :data:`webapp.server.STATIC_PATH`; Gradio's event and component
options that take JavaScript source (``js=``, ``js_on_load=``) get a file's text from
:func:`static_text`, so no script lives inside a Python string.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """The text of ``webapp/static/<name>``."""
    return (STATIC_DIR / name).read_text(encoding="utf-8")
