"""Automatic metrics on hand-made texts; the near-duplicate share with the real offline embedding model."""

from __future__ import annotations

import pytest

from generation.counting import count_words
from evaluation.metrics import (
    distinct_n, format_valid, keyword_stuffing, length_score, longest_repeated_ngram, near_duplicate_share,
    paragraphs_of, prompt_keywords, tokens,
)


def test_length_score_matches_longbench_write():
    assert length_score(1000, 1000) == 100.0
    assert length_score(1300, 1000) == pytest.approx(90.0)  # 100 * (1 - 0.3/3)
    assert length_score(500, 1000) == pytest.approx(50.0)  # 100 * (1 - (2 - 1)/2)
    assert length_score(4000, 1000) == 0.0  # clipped
    assert length_score(300, 1000) == 0.0
    assert length_score(0, 1000) == 0.0
    with pytest.raises(ValueError):
        length_score(10, 0)


def test_length_score_counts_cjk_characters():
    assert length_score(count_words("春眠不觉晓"), 5) == 100.0  # five characters, five "words"
    assert length_score(count_words("one two 三四"), 4) == 100.0


def test_format_valid():
    assert format_valid("<think>plan</think>\n<answer>text</answer>")
    assert format_valid("  <think>\nplan\n</think>  <answer>text</answer>\n")
    assert not format_valid("<answer>text</answer>")  # no plan
    assert not format_valid("<think>plan</think>")  # no answer
    assert not format_valid("<answer>a</answer><think>b</think>")  # wrong order
    assert not format_valid("<think>a</think><answer>b</answer><answer>c</answer>")  # two answers
    assert not format_valid("<think>a<think>b</think><answer>c</answer>")  # nested think
    assert not format_valid("intro <think>a</think><answer>b</answer>")  # text before the plan
    assert not format_valid("<think>a</think> between <answer>b</answer>")
    assert not format_valid("<think>a</think><answer>  </answer>")  # empty answer
    assert not format_valid("")


def test_tokens_and_distinct_n():
    assert tokens("The cat, the CAT! 猫咪") == ["the", "cat", "the", "cat", "猫", "咪"]
    assert distinct_n("a b c d", 1) == 1.0
    assert distinct_n("a a a a", 1) == 0.25
    assert distinct_n("a b a b a", 2) == pytest.approx(2 / 4)  # ab ba ab ba
    assert distinct_n("a", 2) == 0.0
    with pytest.raises(ValueError):
        distinct_n("a", 0)


def test_longest_repeated_ngram():
    assert longest_repeated_ngram("one two three four five six", n=2) == 0
    text = "alpha beta gamma delta x y z alpha beta gamma delta q"
    assert longest_repeated_ngram(text, n=2) == 4
    assert longest_repeated_ngram(text, n=5) == 0  # below the minimum span
    assert longest_repeated_ngram("a b a b a", n=2) == 3  # overlapping occurrences count
    loop = "we walked home. " * 50
    assert longest_repeated_ngram(loop, n=4) == 3 * 49
    assert longest_repeated_ngram("春天来了春天来了", n=2) == 4


def test_paragraphs_of():
    assert paragraphs_of("a\n\n b \n\n\n c") == ["a", "b", "c"]
    assert paragraphs_of("line one\nline two") == ["line one", "line two"]


def test_near_duplicate_share_with_given_embedder():
    vectors = {"p": [1.0, 0.0], "q": [0.99, 0.05], "r": [0.0, 1.0]}
    embed = lambda items: [vectors[i] for i in items]
    assert near_duplicate_share(["p", "q", "r"], embed=embed) == pytest.approx(1 / 3)
    assert near_duplicate_share(["p", "r"], embed=embed) == 0.0
    assert near_duplicate_share(["p"], embed=embed) == 0.0


@pytest.mark.slow
def test_near_duplicate_share_with_the_offline_model():
    paragraphs = [
        "The garden was quiet in the early morning, dew still on the roses.",
        "In the early morning the garden was quiet, and dew was still on the roses.",
        "Quarterly revenue rose by twelve percent, driven by strong sales in Asia.",
        "The garden was quiet in the early morning, dew still on the roses.",
    ]
    share = near_duplicate_share(paragraphs, threshold=0.9)
    assert share == pytest.approx(0.5)  # the paraphrase and the exact copy; not the finance paragraph
    assert near_duplicate_share(paragraphs[:1] + paragraphs[2:3]) == 0.0


def test_keyword_stuffing():
    prompt = "Write an essay about renewable energy policy in Germany."
    assert prompt_keywords(prompt) == ["renewable", "energy", "policy", "germany"]
    filler = " ".join(["the town had a long and quiet history of farming and trade"] * 40)
    natural = filler + " renewable energy policy in germany changed after the energy crisis"
    stuffed = filler + " renewable energy policy germany" * 60
    ok, bad = keyword_stuffing(prompt, natural), keyword_stuffing(prompt, stuffed)
    assert ok < 1.0 < 3.0 < bad
    assert keyword_stuffing("", "text") == 0.0 and keyword_stuffing(prompt, "") == 0.0
    # 关于 holds the function character 于, so it is not a keyword.
    assert prompt_keywords("写一篇关于人工智能的文章") == ["人工", "工智", "智能", "文章"]
