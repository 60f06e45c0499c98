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


def test_growing_count_equals_a_full_count_at_every_step():
    # The live counter counts only what was added; at every length it must agree with count_words,
    # whatever piece arrives (words split across pieces, CJK, apostrophes, digits, underscores).
    import random

    from generation.counting import GrowingCount

    rng = random.Random(7)
    pieces = ["the", " ", "keep", "er", "'s", ",", "\n", "我爱", "abc1", "x_y", "—", "don't", ".", " 42 ", "é", "naïve"]
    for _ in range(100):
        count, text = GrowingCount(), ""
        for _ in range(150):
            text += "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            assert count(text) == count_words(text), repr(text[-60:])


def test_growing_count_starts_again_on_another_text():
    from generation.counting import GrowingCount

    count = GrowingCount()
    assert count("one two three four. five") == 5
    assert count("six") == 1  # shorter: not the same text grown
    assert count("ab cd") == 2
    assert count("abxcd ef") == 2  # the kept point (after "ab ") is now inside a word: counted again
