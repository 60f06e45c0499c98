"""Pair selection and pool planning: pure functions, hand-made cases."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena.pairing import (
    Candidate, PlannedBattle, PoolEntry, battle_weight, choose_battle, plan_battles, uncertainty_from_counts,
)
from arena.pool import name_pattern, names_found


def test_plan_pairs_only_different_models_on_the_same_prompt():
    entries = [PoolEntry(1, 10, "a"), PoolEntry(2, 10, "a"), PoolEntry(3, 10, "b"), PoolEntry(4, 11, "b"),
               PoolEntry(5, 12, "a"), PoolEntry(6, 11, "c")]
    planned = plan_battles(entries, rng=random.Random(0))
    pairs = {(p.prompt_id, frozenset((p.left_generation_id, p.right_generation_id))) for p in planned}
    assert pairs == {(10, frozenset({1, 3})), (10, frozenset({2, 3})), (11, frozenset({4, 6}))}


def test_plan_is_idempotent_and_seeded():
    entries = [PoolEntry(i, 1, m) for i, m in enumerate("abcd", start=1)]
    first = plan_battles(entries, rng=random.Random(7))
    assert len(first) == 6
    assert first == plan_battles(entries, rng=random.Random(7))
    again = plan_battles(entries, existing_pairs=[(p.right_generation_id, p.left_generation_id) for p in first],
                         rng=random.Random(7))
    assert again == []


def test_plan_randomises_sides():
    entries = [PoolEntry(1, 1, "a"), PoolEntry(2, 1, "b")]
    lefts = Counter(plan_battles(entries, rng=random.Random(s))[0].left_generation_id for s in range(200))
    assert set(lefts) == {1, 2} and 60 < lefts[1] < 140


def test_plan_caps_battles_per_prompt():
    entries = [PoolEntry(i, 1, f"m{i}") for i in range(5)]
    assert len(plan_battles(entries, rng=random.Random(1), max_per_prompt=3)) == 3
    assert all(isinstance(p, PlannedBattle) for p in plan_battles(entries, rng=random.Random(1)))


def test_choose_never_repeats_nor_gives_own_writing():
    cands = [Candidate(1, "a", "b"), Candidate(2, "a", "c", authors=frozenset({9})), Candidate(3, "b", "c")]
    rng = random.Random(0)
    for _ in range(50):
        choice = choose_battle(cands, annotator_id=9, already_given={1}, rng=rng)
        assert choice.battle_id == 3
    assert choose_battle(cands, annotator_id=9, already_given={1, 3}, rng=rng) is None
    assert choose_battle([], annotator_id=1, rng=rng) is None


def test_choose_prefers_fewer_votes_and_uncertain_models():
    few, many = Candidate(1, "a", "b", votes=0), Candidate(2, "a", "b", votes=9)
    picks = Counter(choose_battle([few, many], annotator_id=1, rng=random.Random(s)).battle_id for s in range(400))
    assert picks[1] > 3 * picks[2]
    sure, unsure = Candidate(1, "x", "y", votes=2), Candidate(2, "z", "w", votes=2)
    widths = {"x": 0.1, "y": 0.1, "z": 1.0, "w": 1.0}
    assert battle_weight(unsure, widths) > battle_weight(sure, widths)
    picks = Counter(choose_battle([sure, unsure], annotator_id=1, uncertainty=widths,
                                  rng=random.Random(s)).battle_id for s in range(400))
    assert picks[2] > picks[1]


def test_choose_is_reproducible_with_a_seed():
    cands = [Candidate(i, "a", "b", votes=i % 3) for i in range(20)]
    run = lambda: [choose_battle(cands, annotator_id=1, rng=random.Random(5)).battle_id for _ in range(5)]
    assert run() == run()


def test_unrated_model_counts_as_most_uncertain():
    widths = uncertainty_from_counts({"a": 0, "b": 99})
    assert widths["a"] == pytest.approx(1.0) and widths["b"] == pytest.approx(0.1)
    new = Candidate(1, "new", "new")
    old = Candidate(2, "b", "b")
    assert battle_weight(new, widths) > battle_weight(old, widths)


@pytest.mark.parametrize("text,expected", [
    ("As an AI developed by OpenAI, I cannot", ["openai"]),
    ("I am ChatGPT and also claude.", ["chatgpt", "claude"]),
    ("The GPT-4 model wrote this.", ["gpt-4"]),
    ("A gptx token and a Qwenlike thing", []),
    ("Written by smollm2-135m.", ["smollm2-135m"]),
    ("Nothing to see in this story about a river.", []),
])
def test_names_found(text, expected):
    words = ["OpenAI", "ChatGPT", "Claude", "GPT", "GPT-4", "Qwen", "smollm2-135m"]
    assert names_found([text], words=words) == expected


def test_empty_word_list_matches_nothing():
    assert name_pattern([]).search("OpenAI") is None
