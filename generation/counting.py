r"""Word counting the way LongBench-Write counts: every CJK character is a word, plus English words.

LongBench-Write's length evaluation counts characters in U+4E00..U+9FFF one by one, plus the
matches of ``\b[a-zA-Z]+\b`` (so "it's" is two words, and numbers are none). This module is the
project's one definition of a "word": targets, live counters, length control and benchmarks.
"""

from __future__ import annotations

import re

_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"\b[a-zA-Z]+\b")
_WORD_CHAR = re.compile(r"\w")
_LAST_NON_WORD = re.compile(r"\W(?=\w*\Z)")
"""The last character that is not a word character: no match spans it (``\b`` on its either side
depends only on itself and its neighbour), so the text before and after it count apart."""


def count_words(text: str) -> int:
    """CJK ideographs (each one counts) plus English words, exactly as LongBench-Write counts."""
    if not text:
        return 0
    return len(_CJK_CHAR.findall(text)) + len(_WORD.findall(text))


class GrowingCount:
    """:func:`count_words` of a text that only grows (a streamed answer), at a cost that does not
    grow with it: the words before the last non-word character seen are counted once and kept.
    A text that is not the last one plus more (shorter, or changed at the kept point) is counted
    from the start again."""

    def __init__(self) -> None:
        self._upto = 0
        self._words = 0

    def __call__(self, text: str) -> int:
        if len(text) < self._upto or (self._upto and _WORD_CHAR.match(text, self._upto - 1)):
            self._upto = self._words = 0
        tail = text[self._upto:]
        split = _LAST_NON_WORD.search(tail)
        if split is not None:
            self._words += count_words(tail[: split.end()])
            self._upto += split.end()
            tail = tail[split.end():]
        return self._words + count_words(tail)


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a character in U+4E00..U+9FFF (the LongWriter-Zero language rule)."""
    return re.search(r"[\u4e00-\u9fff]", text) is not None
