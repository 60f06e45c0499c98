"""Reward functions: hand-made honest, padded and keyword-stuffed texts of the same length."""

from __future__ import annotations

import pickle

import pytest

from generation.counting import count_words
from training.rewards import AntiHackingPenalty, FormatReward, LengthReward, completion_text, length_score

PROMPT = "Write a short essay about lighthouses and the keepers who tended them."
HONEST = (
    "For centuries, towers of stone stood at the edge of dangerous coasts, and each one needed a person to keep "
    "its lamp burning through the night. Keepers trimmed wicks, polished brass lenses and wound clockwork that "
    "turned the beam. Storms could isolate a station for weeks, so families stored flour, coal and oil, and "
    "children learned their lessons by lamplight.\n\n"
    "The work was lonely but precise. Logs recorded wind, visibility and every passing vessel. Fog signals "
    "demanded attention when the horizon vanished, and a missed hour could cost a ship. Many keepers planted "
    "small gardens in thin soil, raised goats, and painted the tower each summer against salt and rain.\n\n"
    "Automation arrived in the twentieth century. Electric lamps, timers and remote monitoring replaced the "
    "nightly climb, and the last resident crews left their posts. Today volunteers restore old stations as "
    "museums, where visitors climb narrow stairs and imagine the quiet discipline that once guided sailors home."
)


def _half_padded(text: str) -> str:
    """The first half of ``text`` written twice: the same word count, half the content."""
    words = text.split(" ")
    half = " ".join(words[: len(words) // 2])
    return half + "\n\n" + half + (" extra" if len(words) % 2 else "")


def _stuffed(text: str) -> str:
    """Every fourth word replaced by a prompt keyword: the same word count, keyword-stuffed."""
    keywords = ["lighthouses", "keepers", "tended", "essay"]
    words = text.split(" ")
    return " ".join(keywords[(i // 4) % 4] if i % 4 == 3 else w for i, w in enumerate(words))


def _think(answer: str) -> str:
    return f"<think>Plan: three paragraphs, history, daily work, automation.</think>\n<answer>{answer}</answer>"


def test_fixtures_have_the_same_length():
    n = count_words(HONEST)
    assert abs(count_words(_half_padded(HONEST)) - n) <= 2 and abs(count_words(_stuffed(HONEST)) - n) <= 2


def test_length_score_is_the_papers_shape():
    # 1 inside [L_lower, L_upper]; len / L_lower below; (L_max - len) / (L_max - L_upper) above.
    assert length_score(100, lower=80, upper=120, l_max=200) == 1.0
    assert length_score(80, lower=80, upper=120, l_max=200) == 1.0 and length_score(120, lower=80, upper=120, l_max=200) == 1.0
    assert length_score(40, lower=80, upper=120, l_max=200) == pytest.approx(0.5)
    assert length_score(140, lower=80, upper=120, l_max=200) == pytest.approx(0.75)
    assert length_score(140, lower=80, upper=120, l_max=400) == pytest.approx(260 / 280)
    assert length_score(200, lower=80, upper=120, l_max=200) == 0.0 and length_score(999, lower=80, upper=120, l_max=200) == 0.0
    assert length_score(0, lower=80, upper=120, l_max=200) == 0.0


def test_length_reward_reads_ranges_targets_l_max_and_conversations():
    reward = LengthReward(tolerance=0.2)
    text = " ".join(["word"] * 50)
    scores = reward([text, [{"role": "assistant", "content": _think(text)}], text],
                    min_words=[40, 60, None], max_words=[60, 80, None], target_words=[None, None, None])
    assert scores == [1.0, pytest.approx(50 / 60), None]
    assert reward([text], target_words=[100]) == [pytest.approx(50 / 80)]
    # Above the range: L_max explicit for every prompt, per prompt, or twice the upper bound by default.
    assert reward([text], min_words=[10], max_words=[40]) == [pytest.approx((80 - 50) / (80 - 40))]
    assert LengthReward(l_max=60)([text], min_words=[10], max_words=[40]) == [pytest.approx(10 / 20)]
    assert reward([text], min_words=[10], max_words=[40], l_max_words=[45]) == [0.0]


@pytest.mark.parametrize("low, high, l_max", [(0, 0, None), (60, 40, None), (-5, 40, None), (10, 40, 40)])
def test_length_reward_is_neutral_on_a_bad_range(low, high, l_max):
    reward = LengthReward(l_max=l_max)
    assert reward(["some words here"], min_words=[low], max_words=[high]) == [None]


def test_rewards_pickle():
    for reward in (LengthReward(l_max=900), FormatReward(embeddings=False), AntiHackingPenalty()):
        copy = pickle.loads(pickle.dumps(reward))
        assert copy.__name__ == reward.__name__ and vars(copy).keys() == vars(reward).keys()


def test_padded_and_stuffed_texts_score_below_honest_text():
    penalty = AntiHackingPenalty()
    fmt = FormatReward()
    texts = [HONEST, _half_padded(HONEST), _stuffed(HONEST)]
    hacks = penalty([_think(t) for t in texts], prompts=[PROMPT] * 3)
    assert hacks[0] == 0.0
    assert hacks[1] < -0.5 and hacks[2] < -0.5, hacks
    formats = fmt([_think(t) for t in texts])
    assert formats[0] > 0.9 and formats[1] < formats[0] - 0.3, formats
    lengths = LengthReward()([_think(t) for t in texts], target_words=[count_words(HONEST)] * 3)
    assert lengths == [1.0, 1.0, 1.0], "same length: only the other rewards can tell them apart"


def test_format_reward_needs_one_think_then_one_answer():
    fmt = FormatReward(embeddings=False)
    good, no_think, twice = _think("A short answer here."), "<answer>A short answer here.</answer>", _think("x") * 2
    assert fmt([good, no_think, twice, "plain text"]) == [1.0, 0.0, 0.0, 0.0]


def test_completion_text_accepts_plain_and_conversational():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"


def test_grpo_metrics_keep_each_reward_and_count_zero_advantage_steps():
    from training.runner import grpo_metrics

    history = [{"step": 1, "loss": 0.1, "rewards/length/mean": 0.5, "rewards/format/mean": 0.0, "frac_reward_zero_std": 0.5},
               {"step": 2, "loss": 0.0, "rewards/length/mean": 1.0, "rewards/format/mean": 0.0, "frac_reward_zero_std": 1.0},
               {"step": 2, "train_runtime": 9.0}]
    metrics = grpo_metrics(history, trainer=None)
    assert metrics["rewards"]["length"] == {"mean": 0.75, "last": 1.0, "steps": 2}
    assert metrics["rewards"]["format"]["mean"] == 0.0 and metrics["zero_advantage_steps"] == 1


def test_progress_says_when_every_group_has_equal_rewards():
    import io

    from training.trainers import make_progress_callback

    stream = io.StringIO()
    progress = make_progress_callback(stream)
    state = type("State", (), {"global_step": 3, "max_steps": 5})()
    progress.on_log(None, state, None, logs={"loss": 0.0, "frac_reward_zero_std": 1.0})
    progress.on_log(None, state, None, logs={"loss": 0.0, "frac_reward_zero_std": 0.5})
    assert stream.getvalue().count("advantages are zero") == 1
