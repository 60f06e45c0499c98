r"""Word counting the way LongBench-Write counts: every CJK character is a word, plus English words.

LongBench-Write's length evaluation counts characters in U+4E00..U+9FFF one by one, plus the
matches of ``\b[a-zA-Z]+\b`` (so "it's" is two words, and numbers are none). This module is the
project's one definition of a "word": targets, live counters, length control and benchmarks.
"""

from __future__ import annotations

import re

_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"\b[a-zA-Z]+\b")


def count_words(text: str) -> int:
    """CJK ideographs (each one counts) plus English words, exactly as LongBench-Write counts."""
    if not text:
        return 0
    return len(_CJK_CHAR.findall(text)) + len(_WORD.findall(text))


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a character in U+4E00..U+9FFF (the LongWriter-Zero language rule)."""
    return re.search(r"[\u4e00-\u9fff]", text) is not None
