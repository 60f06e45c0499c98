"""LongBench-Write word counting on hand-made text."""

from __future__ import annotations

from generation.counting import count_words, has_cjk


def test_english_words():
    # LongBench-Write's rule: \b[a-zA-Z]+\b, so "It's" and "well-known" are two words each, 42 none.
    assert count_words("Hello, world! It's a well-known fact: 42 apples.") == 9


def test_cjk_characters_each_count():
    assert count_words("我爱北京天安门") == 7
    assert count_words("我爱 Python 和 AI。") == 5
    assert count_words("我爱Python") == 2  # no word boundary between 爱 and P: the English run is not counted


def test_markup_and_empty():
    assert count_words("") == 0
    assert count_words("## Title\n\n- **one** two\n---") == 3


def test_has_cjk():
    assert has_cjk("写一篇文章") and not has_cjk("Write an essay, café")
