"""The plan template on scripted models: planned in levels at any length, never a blank section,
a short list asked for again, sections trimmed to a sentence end, and the ending the plan promised.

Seen through vLLM on a 20,000-word request: the model's plan had 4 lines, and the text was written
as 60 sections, 56 of them with an empty main point; of 60 plan texts, none ended ``concluded``."""

from __future__ import annotations

import itertools

from generation.agentwrite import FIRST_RETRIES
from generation.control import CONCLUDED, SENTENCE_ENDS
from generation.counting import count_words
from generation.events import Answer, Done, Error, Think
from tests.generation.test_control_logic import ScriptedBackend, events_of, plan_for, text, words


class Responder(ScriptedBackend):
    """A scripted model that answers each request from what it asks (``respond(request)``)."""

    def __init__(self, respond) -> None:
        super().__init__([])
        self.respond = respond

    async def stream(self, request, *, cancel=None):
        self.replies = [self.respond(request)]
        async for item in super().stream(request, cancel=cancel):
            yield item


def prose(n: int) -> str:
    """``n`` words in sentences of ten."""
    return " ".join(words(10, i) + "." for i in range(0, n, 10))


def kind(request) -> str:
    user = request.user
    if "Divide it into" in user:
        return "parts"
    if "Write only the plan" in user:
        return "sections"
    return "write"


def plan_run(respond, target: int):
    from generation.agentwrite import default_plan_tokens

    backend = Responder(respond)
    plan = plan_for(backend, template="plan", target=target, think=default_plan_tokens(target), answer_max=10**6)
    return backend, plan, events_of(plan)


def planning_model(parts: str, section_line, *, sections: int, words: int):
    """A ``respond`` for :class:`Responder`: ``parts`` when asked for the parts, ``sections`` lines
    ``section_line(i, n)`` (``i``: the line's number in its list, ``n``: a count over all lists)
    when asked for a list of sections, and ``words`` words of prose for a section."""
    counter = itertools.count(1)

    def respond(request):
        if kind(request) == "parts":
            return parts, "stop"
        if kind(request) == "sections":
            return "\n".join(section_line(i, next(counter)) for i in range(1, sections + 1)), "stop"
        return prose(words), "stop"

    return respond


FOUR_LINES = ("1. The city's founding\n2. Its golden age\n3. The long decline\n4. What remains today\n")


def test_a_20000_word_request_with_a_4_line_plan_gets_a_point_for_every_section():
    respond = planning_model(FOUR_LINES,  # asked for more parts, it says the same four again
                             lambda i, n: f"Section {i} - Main point: event number {n} of the city's story - "
                                          "Word count: 300 words", sections=8, words=420)
    backend, plan, events = plan_run(respond, 20_000)
    planned = plan.stats["plan"]
    points = [entry["point"] for entry in planned]
    assert 40 <= len(points) <= 60
    assert all(p.strip() for p in points) and len({p.lower() for p in points}) == len(points)
    assert sum(entry["words"] for entry in planned) == 20_000 and all(200 <= e["words"] <= 600 for e in planned)
    assert {entry["part"] for entry in planned} == {1, 2, 3, 4}
    written = plan.stats["sections"]
    assert [s["point"] for s in written] == points
    writes = [r for r in backend.requests if kind(r) == "write"]
    assert len(writes) == len(points)
    for index, (request, point) in enumerate(zip(writes, points)):  # each written from its own point
        assert f"section {index + 1} of {len(points)}: {point}" in request.user
    assert max(count_words(r.user) for r in backend.requests) < 1_000  # bounded at any length
    assert planned[-1]["conclusion"] and "last section" in writes[-1].user
    assert plan.stats["ending"] == CONCLUDED and events[-1].finish_reason == "stop"


def test_the_outline_reads_back_as_it_was_planned():
    from generation.planning import read_outline

    respond = planning_model("\n".join(f"Part {i} - Main point: era {i} of the river" for i in range(1, 4)),
                             lambda i, n: f"{i}. Main point: scene {n} by the water - Word count: {100 + 37 * i} words",
                             sections=7, words=300)
    backend, plan, events = plan_run(respond, 5_000)
    think = text(events, Think)
    assert think.count("\nPart ") == 3 and "the conclusion)" in think.strip().splitlines()[-1]
    outline = read_outline(think, 5_000)
    assert outline.parts == ("era 1 of the river", "era 2 of the river", "era 3 of the river")
    assert [{"point": s.point, "words": s.words} for s in outline.sections] == [
        {"point": e["point"], "words": e["words"]} for e in plan.stats["plan"]]
    assert len(outline.sections) == 21  # 7 + 7 + 6 asked; the line the model gave beyond them is kept
    sections_asked = [r for r in backend.requests if kind(r) == "sections"]
    for j, request in enumerate(sections_asked, 1):
        assert f'part {j} of 3 ("era {j} of the river")' in request.user
    answer = text(events, Answer)
    for record in plan.stats["sections"]:  # where each section sits in the answer
        piece = answer[record["start"]:record["end"]]
        assert count_words(piece) == record["words"] and not piece.startswith("\n")


def test_a_short_list_is_asked_for_again_not_padded():
    replies = iter([("Section 1 - Main point: the storm\nSection 2 - Main point: the flood\n"
                     "Section 3 - Main point: the rescue\nSection 4 - Main point: the night\n"),
                    "5. The night\n5. The morning after\n6. The town rebuilds\n"])

    def respond(request):
        return (next(replies), "stop") if kind(request) == "sections" else (prose(300), "stop")

    backend, plan, events = plan_run(respond, 1_500)
    asked = [r for r in backend.requests if kind(r) == "sections"]
    assert len(asked) == 2
    assert asked[0].assistant == "Section 1 - Main point:"  # the model goes on from the list it is in
    assert asked[1].assistant == ("Section 1 - Main point: the storm\nSection 2 - Main point: the flood\n"
                                  "Section 3 - Main point: the rescue\nSection 4 - Main point: the night\n"
                                  "Section 5 - Main point:")
    assert [e["point"] for e in plan.stats["plan"]] == ["the storm", "the flood", "the rescue", "the night",
                                                        "The morning after", "The town rebuilds"]


def test_a_model_that_writes_no_plan_gets_an_error_not_blank_sections():
    echo = " <what the section says> - Word count: <number> words\n\nI will write a lovely story about it."
    backend, plan, events = plan_run(lambda request: (echo, "stop"), 1_500)
    assert isinstance(events[-1], Error) and "wrote no plan" in events[-1].message
    # asked FIRST_RETRIES + 1 times while the list is empty
    assert len(backend.requests) == FIRST_RETRIES + 1 and text(events, Answer) == "" and "sections" not in plan.stats


def test_a_first_list_that_misses_several_times_is_still_planned():
    echo = " <what the section says> - Word count: <number> words"
    replies = iter([echo, "", echo, " This is the main point I will discuss.",
                    " The storm\nSection 2 - Main point: the flood\nSection 3 - Main point: the rescue\n"
                    "Section 4 - Main point: the night\nSection 5 - Main point: the town rebuilds\n"
                    "Section 6 - Main point: what the river left\n"])

    def respond(request):
        return (next(replies), "stop") if kind(request) == "sections" else (prose(250), "stop")

    backend, plan, events = plan_run(respond, 1_500)
    assert [e["point"] for e in plan.stats["plan"]][:2] == ["The storm", "the flood"]
    assert len(plan.stats["plan"]) == 6 and isinstance(events[-1], Done)


def test_a_short_text_whose_model_writes_no_plan_is_one_section_with_the_request_as_its_point():
    # seen from the bundled model through vLLM on 600- and 1,000-word LongBench-Write requests
    echo = " <what the section says> - Word count: <number> words\n\nI will write a lovely story about it."

    def respond(request):
        return (echo, "stop") if kind(request) == "sections" else (prose(1000), "stop")

    backend, plan, events = plan_run(respond, 1_000)
    assert [kind(r) for r in backend.requests] == ["sections"] * (FIRST_RETRIES + 1) + ["write"]
    assert plan.stats["plan_from_request"] is True
    assert plan.stats["plan"][0]["point"] == "Write" and plan.stats["plan"][0]["words"] == 1000
    assert "Now write section 1 of 1: Write\n" in backend.requests[-1].user
    assert isinstance(events[-1], Done) and 900 <= count_words(text(events, Answer)) <= 1100


def test_a_section_cut_by_its_token_cap_mid_sentence_ends_on_a_sentence_end():
    replies = iter([("Section 1 - Main point: the storm - Word count: 100 words\n"
                     "Section 2 - Main point: the calm - Word count: 100 words\n", "stop"),
                    (prose(200), "stop"), (prose(200), "stop")])
    backend = ScriptedBackend([next(replies) for _ in range(3)])
    plan = plan_for(backend, template="plan", target=200, think=400, answer_max=10**4)
    plan.tokens_per_word = 0.5  # the token cap (88) comes before the budget (100 words), mid-sentence
    events = events_of(plan)
    assert backend.requests[1].max_tokens == 88
    answer = text(events, Answer)
    assert answer.split("\n\n")[0].endswith(".") and answer.endswith(".")
    first, second = plan.stats["sections"]
    # the second section asks for the 20 words the first one owes: 120, and its cap grows with it
    assert first["finish"] == second["finish"] == "length" and first["words"] == 80 and second["asked"] == 120
    assert backend.requests[2].max_tokens > 88 and second["words"] > 80
    assert answer[:first["end"]] == prose(80)


def test_the_final_section_that_completes_is_the_promised_ending():
    backend = ScriptedBackend([("Section 1 - Main point: the storm - Word count: 60 words\n"
                                "Section 2 - Main point: how it ends - Word count: 40 words\n", "stop"),
                               (prose(60), "stop"), (prose(40) + " And so the storm ended.", "stop")])
    plan = plan_for(backend, template="plan", target=100, think=400, answer_max=10**4)
    events = events_of(plan)
    assert plan.stats["ending"] == CONCLUDED and events[-1].finish_reason == "stop"
    assert "conclusion of the whole piece" in backend.requests[0].user
    assert text(events, Think).strip().endswith("(40 words, the conclusion)")
    assert "last section" in backend.requests[2].user
    assert text(events, Answer).endswith("And so the storm ended.")


def test_a_stream_that_stops_mid_sentence_is_trimmed_back():
    backend = ScriptedBackend([("Section 1 - Main point: the storm - Word count: 60 words\n", "stop"),
                               (prose(30) + " and then the", "stop")])
    plan = plan_for(backend, template="plan", target=60, think=400, answer_max=10**4)
    events = events_of(plan)
    answer = text(events, Answer)
    assert answer == prose(30) and answer[-1] in SENTENCE_ENDS


def test_a_think_budget_that_cannot_hold_a_plan_is_refused_before_any_token():
    import pytest

    from core.errors import UserError
    from generation.agentwrite import check_reachable

    with pytest.raises(UserError, match=r"a think budget of 0 tokens cannot hold one"):
        check_reachable(target=1_000, plan_tokens=0, prompt_tokens=50, tokens_per_word=1.2, context=8192)


def test_a_part_the_model_gives_no_sections_is_one_section_on_the_part_s_point_within_the_context():
    from generation.agentwrite import section_tokens

    def respond(request):
        if kind(request) == "parts":
            return " the voyage out\nPart 2 - Main point: the voyage home\n", "stop"
        if kind(request) == "sections":
            return " <what the section says>", "stop"
        return prose(1500), "stop"

    backend, plan, events = plan_run(respond, 20_000)
    assert [(e["point"], e["words"], e["part"]) for e in plan.stats["plan"]] == [
        ("the voyage out", 10_000, 1), ("the voyage home", 10_000, 2)]
    writes = [r for r in backend.requests if kind(r) == "write"]
    assert [r.max_tokens for r in writes] == [section_tokens(1_000, 1.0)] * 2  # a long section's request still fits
    assert text(events, Answer).endswith(".") and plan.stats["ending"] == "short"


def test_the_tokens_of_sections_stopped_at_their_length_are_counted():
    """Seen through the Write tab at 10,000 words: every section was stopped at a sentence end past
    its length, and the row said 3,478 tokens for 10,317 words (only the planning requests counted)."""
    from generation.events import Done

    def respond(request):
        if kind(request) == "parts":
            return FOUR_LINES, "stop"
        if kind(request) == "sections":
            return "1. The first event\n2. The second event\n3. The third event\n", "stop"
        return prose(2_000), "stop"  # far past any section's length: the length control stops it

    backend, plan, events = plan_run(respond, 3_000)
    assert [s["finish"] for s in plan.stats["sections"]].count("target") >= 3
    (done,) = [e for e in events if isinstance(e, Done)]
    assert done.completion_tokens >= count_words(text(events, Answer))  # one token a word, as scripted
