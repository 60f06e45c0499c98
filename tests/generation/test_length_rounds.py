"""The round loop's length decisions on scripted streams: the 41-word stop, continuations bounded
by the token budget, the request to conclude, how texts end; and the two pieces it drives
(TokenLedger, LengthController), each alone."""

from __future__ import annotations

from generation.control import CONCLUDED, CUT, NATURAL, SHORT, LengthController, TokenLedger
from generation.events import Answer, Done
from generation.length import Budget
from tests.generation.test_control_logic import ScriptedBackend, events_of, plan_for, switch, text, words


def test_ledger_holds_the_answer_open_to_answer_min_and_no_further():
    ledger = TokenLedger(Budget(think=10, answer_max=100, answer_min=60))
    assert ledger.limits(answering=False) == (110, 0)
    ledger.spend(4, thinking=True)
    ledger.spend(25, thinking=False)
    assert ledger.limits(answering=False) == (6 + 75, 0)
    assert ledger.limits(answering=True) == (75, 35)
    assert ledger.limits(answering=True, steer_min=False) == (75, 0)
    ledger.spend(70, thinking=False)
    assert ledger.limits(answering=True) == (5, 0) and ledger.answer_left == 5


def test_controller_holds_past_the_target_until_a_sentence_ends():
    controller = LengthController(10, steer=False)
    answer = ""
    released = ""
    for chunk in [words(9) + ". ", "alpha bravo", " delta. echo"]:
        answer += chunk
        released += controller.feed(chunk, answer, 1)
    assert released == words(9) + ". alpha bravo delta."
    assert controller.stop_reason == "target" and controller.ending(released, None) == CUT


def test_controller_cuts_at_the_hard_cap_without_a_sentence_end():
    controller = LengthController(10, steer=False)
    answer = released = ""
    for chunk in [words(9) + ". ", "alpha bravo", " charlie", " delta"]:
        answer += chunk
        released += controller.feed(chunk, answer, 1)
    assert released == words(9) + ". alpha bravo charlie"  # 12 words: 1.2 x the target
    assert controller.stop_reason == "length"


def test_controller_asks_to_conclude_near_the_target_and_gives_room():
    controller = LengthController(100)
    answer = words(84) + ". "
    controller.feed(answer, answer, 1)
    assert not controller.should_steer()
    answer += words(2) + ". "
    controller.feed(words(2) + ". ", answer, 1)
    assert controller.should_steer() and controller.words_left() == 14
    controller.concluding = True
    assert controller.soft_limit > 100 and not controller.should_steer()
    assert controller.ending(answer, "stop") == CONCLUDED


def test_endings():
    assert LengthController(100).ending(words(50), "stop") == SHORT
    assert LengthController(100).ending(words(95), "stop") == NATURAL
    assert LengthController(100).ending(words(95), "length") == CUT
    assert LengthController(None).ending("x", "stop") == NATURAL
    assert LengthController(100).ending(words(10), "cancelled") is None


def test_the_41_word_stop_is_continued_with_tags_banned_and_never_complete_when_short():
    """The measured failure: a forced answer of 41 words, then the model closed its answer
    (``</answer>``, a stop string the client applies) at once in every continuation. It was
    stored complete after a fixed four requests. Now the continuation bans the stop strings, is
    held open to answer_min, and a text that still ends short finishes as ``short``."""
    backend = ScriptedBackend([("plan " * 8, "stop"), (words(41) + ".", "stop"), ("", "stop"), ("", "stop")])
    plan = plan_for(backend, target=400, think=8, answer_max=800, answer_min=380)
    events = events_of(plan)
    assert len(backend.requests) == 3  # plan, forced answer, one continuation that added nothing
    continuation = backend.requests[2]
    assert "</answer>" in continuation.bad_words and continuation.min_tokens > 0
    assert continuation.assistant.endswith(words(41) + ".")
    assert events[-1].finish_reason == "short" and plan.stats["ending"] == SHORT


def test_continuations_are_bounded_by_the_budget_not_a_count():
    replies = [(words(10) + ".", "stop") for _ in range(12)]
    backend = ScriptedBackend(replies)
    plan = plan_for(backend, template="direct", target=100, answer_max=1000, answer_min=95)
    switch(plan, "direct")
    events = events_of(plan)
    assert plan.stats["continued"] >= 6  # more than the old fixed four requests
    assert isinstance(events[-1], Done) and events[-1].finish_reason != "short"


def test_a_text_nearing_its_target_is_asked_to_conclude_in_a_new_round():
    backend = ScriptedBackend([(words(90) + ". " + words(30) + ".", "stop"), (words(8) + ". The end.", "stop")])
    plan = plan_for(backend, template="direct", target=100, answer_max=1000)
    switch(plan, "direct")
    events = events_of(plan)
    second = backend.requests[1]
    assert "natural, complete ending within about" in second.user and second.min_tokens == 0
    assert second.assistant == text(events, Answer)[: len(second.assistant)]
    assert plan.stats["ending"] == CONCLUDED and events[-1].finish_reason == "stop"


def test_plan_template_plans_then_writes_each_section_to_its_budget():
    from generation.planning import read_outline

    plan_text = ("Section 1 - Main point: the storm arrives - Word count: 30 words\n"
                 "Section 2 - Main point: the rescue - Word count: 50 words\n")
    outline = [("the storm arrives", 38), ("the rescue", 62)]
    assert [(s.point, s.words) for s in read_outline(plan_text, 100).sections] == outline
    backend = ScriptedBackend([(plan_text, "stop"), (words(40) + ". " + words(10) + ".", "stop"),
                               (words(60) + ". More.", "stop")])
    plan = plan_for(backend, template="plan", target=100, think=200, answer_max=1000)
    switch(plan, "plan")
    events = events_of(plan)
    from generation.events import Think

    assert [(s.point, s.words) for s in read_outline(text(events, Think), 100).sections] == outline
    answer = text(events, Answer)
    assert answer.count("\n\n") == 1 and answer.startswith(words(40) + ".")
    second = backend.requests[2]
    assert "section 2 of 2: the rescue" in second.user and words(40) in second.user and "last section" in second.user
    sections = plan.stats["sections"]
    assert [s["budget"] for s in sections] == [38, 62] and [s["words"] for s in sections] == [40, 61]
    assert events[-1].finish_reason in ("stop", "target")


def test_plan_section_that_breaks_down_ends_the_text_as_broken_down_not_cut():
    # Seen on LongBench-Write with the bundled model: a text stopped because it broke down (no
    # word for 200 tokens) was counted among the texts cut at their target.
    from generation.control import BROKE_DOWN

    plan_text = ("Section 1 - Main point: the storm - Word count: 400 words\n"
                 "Section 2 - Main point: the rescue - Word count: 200 words\n")
    junk = " ".join(["קק"] * 400)
    backend = ScriptedBackend([(plan_text, "stop"), (words(400) + ". " + words(20) + ".", "stop"),
                               (words(30) + " " + junk, "stop")])
    plan = plan_for(backend, template="plan", target=600, think=200, answer_max=2000)
    switch(plan, "plan")
    events = events_of(plan)
    assert [s["finish"] for s in plan.stats["sections"]] == ["target", "degenerate"]
    assert plan.stats["ending"] == BROKE_DOWN and events[-1].finish_reason == "degenerate"


def test_plan_template_refuses_what_it_cannot_reach_with_the_numbers():
    import pytest

    from core.errors import UserError
    from generation.agentwrite import check_reachable

    with pytest.raises(UserError, match=r"at most 60 sections of 1,000 words \(60,000 words\); 100,000 is beyond it"):
        check_reachable(target=100_000, plan_tokens=3000, prompt_tokens=50, tokens_per_word=1.2, context=8192)
    with pytest.raises(UserError, match=r"needs up to [\d,]+ tokens .* more than the model's context of 1,024 tokens"):
        check_reachable(target=20_000, plan_tokens=3000, prompt_tokens=50, tokens_per_word=1.2, context=1024)
    check_reachable(target=10_000, plan_tokens=2000, prompt_tokens=50, tokens_per_word=1.2, context=8192)
