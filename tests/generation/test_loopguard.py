"""The loop guard (``generation.loopguard``) alone and in every template's stream.

The looping case is the one measured on the bundled model: asked for a 3,000-word essay it wrote
"In conclusion…" near 500 words, then chatbot chatter, then over 100 lines of "It's grownll.". The
varied case is a real 11,000-word text (``tests/data/varied_long_text.md``), tables included:
stopping it would be the failure to avoid.
"""

from __future__ import annotations

import re

import pytest

from generation.control import LOOPING, LengthController
from generation.counting import count_words
from generation.events import Answer, Done
from generation.loopguard import LoopGuard
from tests.conftest import REPO_ROOT
from tests.generation.test_control_logic import ScriptedBackend, events_of, plan_for, text

VARIED = (REPO_ROOT / "tests" / "data" / "varied_long_text.md").read_text(encoding="utf-8")
CHATTER = ("In conclusion, a city that plants trees plants its own future, and the work is worth every hour.\n"
           "What brings you here today? I'm happy to help with anything else you need.\n"
           "P.S. If you liked this essay, you could win a $25 Amazon gift card!\n"
           "Let me know if you have any questions.\n")
LOOP_LINE = "It's grownll.\n"


def essay_prefix(words: int = 480) -> str:
    """The first ``words`` words of a real text, cut at a line end."""
    kept, count = [], 0
    for line in VARIED.splitlines(keepends=True):
        kept.append(line)
        count += count_words(line)
        if count >= words:
            break
    return "".join(kept)


def pieces(text: str) -> list[str]:
    """``text`` in token-sized chunks, words split in two now and then, as servers stream."""
    out = []
    for piece in re.findall(r"\S+\s*|\s+", text):
        cut = len(piece) // 2 if len(piece) > 6 else len(piece)
        out += [piece[:cut], piece[cut:]] if cut < len(piece) else [piece]
    return out


def fed(text: str) -> LoopGuard:
    guard = LoopGuard()
    for chunk in pieces(text):
        if guard.feed(chunk):
            break
    return guard


def test_the_grownll_loop_is_stopped_within_a_few_hundred_words():
    before = essay_prefix() + CHATTER
    loop_from = count_words(before)
    guard = fed(before + LOOP_LINE * 150)
    assert guard.looping_at is not None
    assert guard.words - loop_from <= 300  # stopped within a few hundred words of the loop's start
    assert loop_from - 10 <= guard.looping_at <= loop_from + 10  # and it says where the loop began


def test_a_repeated_paragraph_longer_than_a_line_is_caught_by_its_words():
    paragraph = " ".join(essay_prefix(60).split())  # one paragraph of ~60 words, no line end inside
    loop_from = count_words(essay_prefix())
    guard = fed(essay_prefix() + (paragraph + " ") * 20)
    assert guard.looping_at is not None and guard.words - loop_from <= 400


def test_a_chinese_text_that_loops_is_checked_in_characters():
    prose = "".join(f"第{i}天，我们沿着海岸走到灯塔，看见远处的船慢慢靠岸。" for i in range(30))
    varied = "".join(chr(0x4E00 + (i * 37) % 20000) for i in range(600)) + "。"
    assert fed(varied).looping_at is None
    assert fed(prose + "灯塔的光一直亮着。" * 80).looping_at is not None


def test_a_long_varied_real_text_is_not_stopped():
    guard = fed(VARIED)
    assert guard.looping_at is None and guard.words >= 11_000


def test_the_guard_counts_words_as_the_counter_does():
    sample = "It's the keeper's lamp — 灯塔的光 — and naïve words; 3.5 km, 10k steps.\n" * 3
    assert fed(sample).words == count_words(sample)


def test_the_controller_stops_a_loop_without_a_target_and_names_it():
    controller = LengthController(None)
    answer = released = ""
    for chunk in pieces(essay_prefix() + LOOP_LINE * 150):
        answer += chunk
        released += controller.feed(chunk, answer, 1)
        if controller.stop_reason:
            break
    assert controller.stop_reason == LOOPING and controller.ending(released, None) == LOOPING
    assert released == answer  # what the guard saw is what the row keeps


def loop_reply() -> str:
    return " ".join((essay_prefix() + CHATTER + LOOP_LINE * 400).split(" "))


@pytest.mark.parametrize("template", ["direct", "think"])
def test_a_looping_stream_is_stopped_as_looping(template):
    reply = ("<answer>" if template == "think" else "") + loop_reply()
    backend = ScriptedBackend([(reply, "length")])
    plan = plan_for(backend, template=template, target=3000, think=8, answer_max=6000)
    events = events_of(plan)
    answer = text(events, Answer)
    assert events[-1].finish_reason == LOOPING and plan.stats["ending"] == LOOPING
    loop_from = count_words(essay_prefix() + CHATTER)
    assert count_words(answer) - loop_from <= 300


THREE_SECTIONS = ("Section 1 - Main point: the trees - Word count: 300 words\n"
                  "Section 2 - Main point: the water - Word count: 300 words\n"
                  "Section 3 - Main point: the future - Word count: 300 words\n")


ENDING = "And so the city grew its future, one tree at a time, as the plan had promised at its start."


def looping_section() -> str:
    return " ".join((essay_prefix(100) + LOOP_LINE * 100).split(" "))


def plan_run(replies, *, target=750):
    from generation.templates import render

    backend = ScriptedBackend([(THREE_SECTIONS, "stop"), *replies])
    plan = plan_for(backend, template="plan", target=target, think=300, answer_max=3000)
    plan.request.repetition_penalty = 1.1
    plan.rendered = render("plan", "Write.")
    return backend, plan, events_of(plan)


def test_a_plan_section_that_loops_is_stopped_and_the_next_section_is_written_at_a_higher_penalty():
    fine = " ".join(essay_prefix(320).split(" "))
    ending = " ".join(essay_prefix(230).split(" ")) + " " + ENDING
    backend, plan, events = plan_run([(looping_section(), "length"), (fine, "length"), (ending, "stop")])
    assert len(backend.requests) == 4  # the plan, the looping section, then sections 2 and 3
    # the words the loop cost are spread over the sections after it (planned: 250 each)
    asked = [int(re.search(r"Write about (\d+) words", r.user).group(1)) for r in backend.requests[1:]]
    assert asked[0] == 250 and asked[1] > 250 and asked[2] > 250
    sections = plan.stats["sections"]
    assert [s["finish"] for s in sections][0] == LOOPING and len(sections) == 3
    penalties = [r.repetition_penalty for r in backend.requests]
    assert penalties[:2] == [1.1, 1.1] and penalties[2] == penalties[3] == pytest.approx(1.15)
    [loop] = plan.stats["loops"]
    assert loop["section"] == 1 and loop["penalty"] == 1.1 and 100 <= loop["at_words"] <= 140
    # section 2's request sees the text before the loop, not the loop (its first line, not yet a copy, at most)
    assert backend.requests[2].user.count("grownll") <= 1 and backend.requests[3].user.count("grownll") <= 1
    answer = text(events, Answer)
    assert answer.rstrip().endswith("at its start.")
    assert events[-1].finish_reason == "stop" and plan.stats["ending"] == "concluded"


def test_a_last_section_that_loops_is_written_again_for_the_ending():
    fine = " ".join(essay_prefix(320).split(" "))
    backend, plan, events = plan_run([(fine, "length"), (fine, "length"), (looping_section(), "length"),
                                      (ENDING, "stop")])
    assert len(backend.requests) == 5
    assert backend.requests[4].repetition_penalty == pytest.approx(1.15)
    assert "last section" in backend.requests[4].user
    assert plan.stats["loops"][0]["section"] == 3
    assert events[-1].finish_reason == "stop" and plan.stats["ending"] == "concluded"


def test_sections_that_loop_twice_in_a_row_stop_the_text_as_looping():
    backend, plan, events = plan_run([(looping_section(), "length"), (looping_section(), "length"),
                                      ("Never asked for.", "stop")])
    assert len(backend.requests) == 3  # the plan and two looping sections; nothing after them
    assert [s["finish"] for s in plan.stats["sections"]] == [LOOPING, LOOPING]
    assert [loop["section"] for loop in plan.stats["loops"]] == [1, 2]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == LOOPING and plan.stats["ending"] == LOOPING


def test_before_loop_keeps_the_words_before_the_loop_to_a_sentence_end():
    from generation.agentwrite import before_loop

    text = "One two three. Four five six. " + LOOP_LINE * 5
    assert before_loop(text, 6) == "One two three. Four five six."
    assert before_loop(text, 4) == "One two three."
    assert before_loop(text, 0) == ""


def test_a_long_varied_stream_is_written_to_its_target():
    first = essay_prefix(8_600)  # the round is closed near 8,500 words to ask for the ending
    untagged = str.maketrans({"<": "‹", ">": "›"})  # the text quotes the think/answer tags
    backend = ScriptedBackend([(first.translate(untagged), "stop"), (VARIED[len(first):].translate(untagged), "stop")])
    plan = plan_for(backend, template="direct", target=10_000, answer_max=20_000)
    events = events_of(plan)
    assert events[-1].finish_reason == "target" and count_words(text(events, Answer)) >= 10_000


def test_the_stored_row_says_looping(monkeypatch, sqlite_engine):
    import generation.backends
    from generation.request import GenerationRequest
    from writing.store import generate_to_row
    from storage.catalog import add_model
    from storage.engine import session_scope
    from tests.generation.test_control_logic import SizedBackend

    backend = SizedBackend(at_most=20, exact=20, replies=[(loop_reply(), "length")])
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    with session_scope(sqlite_engine) as session:
        add_model(session, name="m", backend="openai", base_url="http://x/v1", model_id="m", template="direct")
    row = generate_to_row(sqlite_engine, model="m", request=GenerationRequest("Write an essay.", target_words=3000))
    assert row.finish_reason == LOOPING and row.params["ending"] == LOOPING
    assert row.status == "truncated"  # not complete: it does not go to the arena, and Continue is offered
    assert row.answer_words - count_words(essay_prefix() + CHATTER) <= 300


def test_a_run_to_its_row_stops_at_its_stop_time_and_keeps_what_it_wrote(monkeypatch, sqlite_engine):
    """``generate_to_row(stop_at=...)`` (the long benchmarks' deadline) cancels as a closed page does."""
    import asyncio
    import time

    import generation.backends
    from generation.backends.base import Delta, Finish
    from generation.request import GenerationRequest
    from storage.catalog import add_model
    from storage.engine import session_scope
    from tests.generation.test_control_logic import SizedBackend, words
    from writing.store import generate_to_row

    class Slow(SizedBackend):
        async def stream(self, request, *, cancel=None):
            for index, word in enumerate(words(400).split()):
                if cancel is not None and cancel.is_set():
                    yield Finish("cancelled", 10, index)
                    return
                yield Delta(word + " ", 1)
                await asyncio.sleep(0.01)
            yield Finish("stop", 10, 400)

    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: Slow(at_most=20, exact=20))
    with session_scope(sqlite_engine) as session:
        add_model(session, name="m", backend="openai", base_url="http://x/v1", model_id="m", template="direct")
    row = generate_to_row(sqlite_engine, model="m", request=GenerationRequest("Write an essay.", target_words=3000),
                          stop_at=time.time() + 1.0)
    assert row.status == "interrupted" and row.answer, row
    assert row.answer_words == count_words(row.answer) and 0 < row.answer_words < 400
