"""The service's control decisions on scripted streams: which requests it sends and what it
keeps. A scripted backend replays fixed text so each case is exact; the real backends run in
test_vllm_backend.py and test_local_backend.py."""

from __future__ import annotations

import asyncio

from generation.backends.base import BackendRequest, Delta, Finish
from generation.events import Answer, Done, Think
from generation.length import Budget
from generation.request import GenerationRequest
from generation.prepared import Plan
from generation.service import run_plan
from generation.templates import render, template_named


class ScriptedBackend:
    """Replays one scripted reply per request (word by word, one token each); records requests."""

    description = "scripted"

    def __init__(self, replies: list[tuple[str, str]]) -> None:
        self.replies = list(replies)
        self.requests: list[BackendRequest] = []

    async def stream(self, request, *, cancel=None):
        self.requests.append(request)
        text, finish = self.replies.pop(0)
        pieces = [p for p in text.split(" ")]
        sent = 0
        for index, piece in enumerate(pieces):
            if sent >= request.max_tokens:
                yield Finish("length", 10, sent)
                return
            yield Delta(piece + (" " if index < len(pieces) - 1 else ""), 1)
            sent += 1
        yield Finish(finish, 10, sent)


def plan_for(backend, *, template="think", target=None, think=8, answer_max=100, answer_min=0):
    request = GenerationRequest("Write.", target_words=target, seed=1)
    return Plan(request, backend, template_named(template), render(template, "Write."), True,
                Budget(think, answer_max, answer_min), 1.0, 10, 8192, 1)


def switch(plan, template):
    """The plan, written with another template from now on."""
    plan.template, plan.rendered = template_named(template), render(template, "Write.")


def events_of(plan):
    async def go():
        return [e async for e in run_plan(plan)]

    return asyncio.run(go())


def text(events, kind):
    return "".join(e.text for e in events if isinstance(e, kind))


def test_think_budget_forces_the_answer_with_a_second_request():
    backend = ScriptedBackend([("a b c d e f g h i j k l", "stop"), ("The answer.", "stop")])
    plan = plan_for(backend, think=4)
    events = events_of(plan)
    assert text(events, Think) == "a b c d "
    assert text(events, Answer) == "The answer."
    second = backend.requests[1]
    assert second.assistant == "<think>a b c d </think>\n<answer>\n"
    assert plan.stats["forced_answer"] and plan.stats["rounds"] == 2


def test_plan_never_closed_is_forced_open():
    backend = ScriptedBackend([("just planning", "stop"), ("Now text.", "stop")])
    events = events_of(plan_for(backend, think=50))
    assert text(events, Think) == "just planning" and text(events, Answer) == "Now text."
    assert events[-1] == Done("stop", 10, 4)


def words(n: int, start: int = 0) -> str:
    """``n`` words with no 4-word sequence repeated within 1,728 words (the loop guard would stop a
    text that cycles through a few words, as it should)."""
    names = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    size = len(names)
    return " ".join(names[k % size] + names[k // size % size] + names[k // size ** 2 % size]
                    for k in range(start, start + n))


def test_target_stop_at_a_sentence_end_reached_with_the_target():
    backend = ScriptedBackend([(words(9) + ". " + words(5) + ". tail", "stop")])
    events = events_of(plan_for(backend, template="direct", target=8, answer_max=50))
    assert text(events, Answer).rstrip() == words(9) + "."
    assert events[-1].finish_reason == "target"


def test_text_past_the_target_is_held_until_a_sentence_ends():
    backend = ScriptedBackend([(words(11) + ". more words here", "stop")])
    events = events_of(plan_for(backend, template="direct", target=10, answer_max=100))
    answer = text(events, Answer)
    assert answer == words(11) + "." and events[-1].finish_reason == "target"


def test_hard_cap_without_sentence_end():
    words_ = words(60)
    backend = ScriptedBackend([(words_, "stop")])
    events = events_of(plan_for(backend, template="direct", target=20, answer_max=100))
    assert events[-1].finish_reason == "length"
    assert len(text(events, Answer).split()) == 24  # 1.2 x the target, the hard cap


def test_an_answer_that_stops_writing_words_is_stopped_as_degenerate():
    # Seen from the bundled model past 2,000 words: one foreign letter, token after token. The
    # text is stopped NO_WORDS_TOKENS tokens after its last word, not at the end of its budget.
    from generation.control import NO_WORDS_TOKENS

    junk = " ".join(["קק"] * 1000)
    backend = ScriptedBackend([(words(30) + " " + junk, "length")])
    plan = plan_for(backend, template="direct", target=500, answer_max=2000)
    events = events_of(plan)
    done = events[-1]
    assert done.finish_reason == "degenerate"
    assert plan.stats["ending"] == "broke_down"  # counted apart from texts cut at their target
    assert NO_WORDS_TOKENS <= done.completion_tokens - 30 <= NO_WORDS_TOKENS + 16  # checked every 16 tokens
    assert text(events, Answer).startswith(words(30))


def test_short_answer_is_continued_with_min_tokens():
    backend = ScriptedBackend([("<answer>Short.", "stop"), (" And then much more text here to reach it.", "stop")])
    plan = plan_for(backend, target=10, think=8, answer_max=100, answer_min=10)
    switch(plan, "direct")
    events = events_of(plan)
    assert len(backend.requests) == 2 and backend.requests[1].assistant == "<answer>Short."
    assert backend.requests[1].min_tokens >= 8 and plan.stats["continued"] == 1
    assert text(events, Answer).startswith("Short. And then")


def test_zero_think_budget_starts_with_the_answer():
    backend = ScriptedBackend([("Straight text.", "stop")])
    events = events_of(plan_for(backend, think=0))
    assert backend.requests[0].assistant == "<think></think>\n<answer>\n"
    assert text(events, Think) == "" and text(events, Answer) == "Straight text."


class SizedBackend(ScriptedBackend):
    """A scripted backend whose prompt bound and exact count are given; records which it was asked for."""

    def __init__(self, *, at_most: int, exact: int, replies=()) -> None:
        super().__init__(list(replies))
        self.description = f"sized-{at_most}-{exact}"
        self.at_most, self.exact, self.asked = at_most, exact, []

    async def context_length(self) -> int:
        return 8192

    async def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def prompt_tokens_at_most(self, request) -> int:
        self.asked.append("at_most")
        return self.at_most

    async def prompt_tokens(self, request) -> int:
        self.asked.append("exact")
        return self.exact


def prepared(monkeypatch, backend, request):
    import generation.backends
    from generation.service import prepare
    from storage.models import ModelEntry

    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    entry = ModelEntry(name="m", backend="openai", base_url="http://x/v1", model_id="m", template="think",
                       sampling={"api": "chat"})
    return asyncio.run(prepare(entry, request))


def test_prompt_far_from_the_context_is_not_counted_and_the_server_reports_it(monkeypatch):
    backend = SizedBackend(at_most=300, exact=120, replies=[("<think>plan</think><answer>Text.</answer>", "stop"), ("", "stop")])
    plan = prepared(monkeypatch, backend, GenerationRequest("Write.", target_words=100, seed=3))
    assert backend.asked == ["at_most"] and plan.prompt_tokens is None
    assert plan.params()["prompt_tokens_at_most"] == 300
    assert events_of(plan)[-1].prompt_tokens == 10  # what the (scripted) server reported


def test_prompt_near_the_context_is_counted_exactly(monkeypatch):
    shrinking = SizedBackend(at_most=7000, exact=7000)  # no target: the default budget shrinks to fit
    plan = prepared(monkeypatch, shrinking, GenerationRequest("Write.", seed=3))
    assert shrinking.asked == ["at_most", "exact"] and plan.prompt_tokens == 7000
    assert plan.budget.think + plan.budget.answer_max <= 8192 - 7000
    loose = SizedBackend(at_most=9000, exact=100)  # the bound alone would refuse: the exact count decides
    plan = prepared(monkeypatch, loose, GenerationRequest("Write.", target_words=1000, seed=3))
    assert loose.asked == ["at_most", "exact"] and plan.prompt_tokens == 100
    assert "prompt_tokens_at_most" not in plan.params()


def test_prompt_counted_after_the_fact_when_the_first_request_was_closed_early(monkeypatch):
    backend = SizedBackend(at_most=300, exact=120, replies=[("a b c d e f g h", "stop"), ("The answer.", "stop")])
    plan = prepared(monkeypatch, backend, GenerationRequest("Write.", think_budget=4, max_tokens=50, seed=3))
    events = events_of(plan)  # the plan hits its budget: the first stream is closed before its usage
    assert backend.asked == ["at_most", "exact"] and events[-1].prompt_tokens == 120


class ReportingBackend(SizedBackend):
    """A sized backend whose server reports the prompt's length with every chunk (vLLM's continuous usage)."""

    async def stream(self, request, *, cancel=None):
        async for item in super().stream(request, cancel=cancel):
            yield Delta(item.text, item.tokens, 77) if isinstance(item, Delta) else item


def test_prompt_length_reported_with_the_text_is_kept_when_the_first_request_is_closed_early(monkeypatch):
    backend = ReportingBackend(at_most=300, exact=120, replies=[("a b c d e f g h", "stop"), ("The answer.", "stop")])
    plan = prepared(monkeypatch, backend, GenerationRequest("Write.", think_budget=4, max_tokens=50, seed=3))
    events = events_of(plan)  # the plan hits its budget: the first stream is closed before its Finish
    assert backend.asked == ["at_most"] and events[-1].prompt_tokens == 77
