"""Request validation, budget planning and templates: pure logic on hand-made cases."""

from __future__ import annotations

import pytest

from generation.backends.base import StopFilter
from generation.length import Budget, answer_token_range, plan_budget
from generation.request import GenerationRequest
from generation.control import sentence_cut
from generation.templates import render
from core.errors import UserError


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t ", "\x00\x07\x1b"])
def test_empty_prompt_refused(prompt):
    with pytest.raises(UserError, match="empty"):
        GenerationRequest(prompt)


def test_control_characters_stripped_newlines_kept():
    request = GenerationRequest("  Write\x00 a\x1b poem\u200b.\nTwo lines.\x7f ")
    assert request.prompt == "Write a poem.\nTwo lines."


def test_prompt_size_limit_names_size_and_limit():
    with pytest.raises(UserError, match=r"100,001 characters.*100,000"):
        GenerationRequest("x" * 100_001)
    assert len(GenerationRequest("x" * 100_000).prompt) == 100_000


@pytest.mark.parametrize("target", [0, -5, 100_001, 2.5, True])
def test_target_out_of_range_refused(target):
    with pytest.raises(UserError, match="target"):
        GenerationRequest("Write.", target_words=target)


def test_target_bounds_accepted():
    assert GenerationRequest("Write.", target_words=1).target_words == 1
    assert GenerationRequest("Write.", target_words=100_000).target_words == 100_000


@pytest.mark.parametrize("field,value", [("think_budget", -1), ("max_tokens", 0), ("temperature", 3.0),
                                         ("top_p", 0.0), ("seed", -1)])
def test_bad_sampling_values_refused(field, value):
    with pytest.raises(UserError):
        GenerationRequest("Write.", **{field: value})


def test_params_leave_out_the_prompt():
    params = GenerationRequest("Write.", target_words=10, seed=3).params()
    assert "prompt" not in params and params["seed"] == 3 and params["target_words"] == 10


def test_answer_token_range_scales_with_ratio():
    low, high = answer_token_range(1000, 1.5)
    assert low == 1425 and high == 2408


def test_budget_with_target_and_think():
    budget = plan_budget(target_words=1000, think_budget=300, max_tokens=None, tokens_per_word=1.5,
                         with_think=True, prompt_tokens=400, context=8192)
    assert budget == Budget(think=300, answer_max=2408, answer_min=1425)


def test_default_think_budget_is_half_the_answer_within_bounds():
    small = plan_budget(target_words=100, think_budget=None, max_tokens=None, tokens_per_word=1.3,
                        with_think=True, prompt_tokens=100, context=8192)
    large = plan_budget(target_words=2000, think_budget=None, max_tokens=None, tokens_per_word=1.3,
                        with_think=True, prompt_tokens=100, context=8192)
    assert small.think == 256 and large.think == 2048


def test_direct_template_has_no_think_budget():
    budget = plan_budget(target_words=None, think_budget=500, max_tokens=100, tokens_per_word=1.3,
                         with_think=False, prompt_tokens=10, context=8192)
    assert budget == Budget(think=0, answer_max=100, answer_min=0)


def test_over_the_context_refused_with_both_numbers():
    with pytest.raises(UserError) as info:
        plan_budget(target_words=10_000, think_budget=None, max_tokens=None, tokens_per_word=1.3,
                    with_think=True, prompt_tokens=300, context=8192)
    message = str(info.value)
    assert "8192" in message and "300 tokens" in message and "23156 tokens" in message


def test_defaults_shrink_to_fit_the_context():
    budget = plan_budget(target_words=None, think_budget=None, max_tokens=None, tokens_per_word=1.3,
                         with_think=True, prompt_tokens=6000, context=8192)
    assert budget.total == 8192 - 6000 and budget.answer_max > budget.think


def test_think_template_english_and_chinese():
    english = render("think", "Write a poem about rain.")
    assert english.language == "en" and english.raw.endswith("<|user|>: Write a poem about rain. <|assistant|>:")
    assert english.prefill == "<think>" and english.stop == ["<|user|>", "<|endoftext|>", "</answer>"]
    assert english.system.startswith("A conversation between the user and the assistant.") and "<|user|>" not in english.system
    chinese = render("think", "写一首关于雨的诗")
    assert chinese.language == "zh" and chinese.raw.endswith("<|用户|>: 写一首关于雨的诗 <|助手|>:")
    assert chinese.system.startswith("用户与助手之间的对话")


def test_direct_template_has_no_plan():
    direct = render("direct", "Write a poem.")
    assert direct.prefill == "" and "<think>" not in direct.raw and direct.stop == []
    with pytest.raises(UserError, match="unknown template"):
        render("fancy", "Write.")


def test_stop_filter_cuts_at_stop_and_holds_partial():
    stops = StopFilter(["</answer>", "<|user|>"])
    assert stops.push("text </ans") == "text "
    assert stops.push("wer> more") == ""
    assert stops.stopped and stops.flush() == ""
    other = StopFilter(["</answer>"])
    assert other.push("a </b") == "a </b"  # '</b' cannot become '</answer>': nothing held
    assert other.push("> c") == "> c"
    assert other.push(" <") == " "
    assert other.flush() == "<"


def test_sentence_cut():
    assert sentence_cut("no end yet") is None
    assert sentence_cut(' ends here." And more') == len(' ends here."')
    assert sentence_cut("结束。下一句") == 3
