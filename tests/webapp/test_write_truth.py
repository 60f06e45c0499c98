"""The Write page tells the truth: a closed tab is "interrupted", not "stopped by you"; a looping
model and a slow one are named as such; a request in a language the model does not write is
refused before any token; the model list says what each model is for."""

from __future__ import annotations

import asyncio

import pytest

from generation.backends.base import Delta, Finish
from generation.events import Answer, Done
from storage.catalog import add_model
from storage.engine import session_scope
from storage.generations import get_generation
from storage.models import ModelEntry
from tests.generation.test_control_logic import SizedBackend, words
from webapp.rendering import finish_words
from webapp.writing import CLOSED, ActiveRuns, WriteInputs, WriteView, run_generation


class EndlessBackend(SizedBackend):
    """Writes varied words until it is cancelled, as a model server does for a long text."""

    def __init__(self) -> None:
        super().__init__(at_most=10, exact=10)

    async def stream(self, request, *, cancel=None):
        self.requests.append(request)
        sent = 0
        while not (cancel is not None and cancel.is_set()):
            yield Delta(words(1, start=sent) + " ", 1)
            sent += 1
            await asyncio.sleep(0)
        yield Finish("cancelled", 10, sent)


@pytest.fixture
def endless(monkeypatch, sqlite_engine):
    import generation.backends

    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: EndlessBackend())
    with session_scope(sqlite_engine) as session:
        add_model(session, name="m", backend="openai", base_url="http://x/v1", model_id="m", template="direct")
    return sqlite_engine


def write_until(engine, how: str):
    """Start a text, read its first words, then end it ``how``: ``stop`` (the Stop button),
    ``unload`` (Gradio's unload event when the tab closes) or ``leave`` (the page's stream is
    closed under the handler). Returns the stored row once the run's task has finished it."""
    from webapp import writing

    async def scenario():
        runs = ActiveRuns()
        run = runs.add(owner="ann", session="s1")
        inputs = WriteInputs(prompt="Write a story.", target_words=None, model="m", temperature=0.6, top_p=0.95,
                             seed=1, think_budget=None)
        events = run_generation(engine, inputs=inputs, author_id=None, run=run)
        answers = 0
        async for event in events:
            answers += isinstance(event, Answer)
            if answers == 5:
                if how == "leave":
                    break
                runs.cancel(owner="ann", session="s1", **({"reason": CLOSED} if how == "unload" else {}))
                answers += 1
        await events.aclose()
        await asyncio.gather(*list(writing._PENDING))
        return run.generation_id

    generation_id = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    with session_scope(engine) as session:
        return get_generation(session, generation_id=generation_id)


def test_stop_says_stopped_by_you(endless):
    row = write_until(endless, "stop")
    assert (row.status, row.finish_reason) == ("interrupted", "cancelled")
    assert finish_words(row.status, row.finish_reason) == "stopped by you"


@pytest.mark.parametrize("how", ["unload", "leave"])
def test_a_closed_tab_is_interrupted_not_stopped_by_you(endless, how):
    row = write_until(endless, how)
    assert (row.status, row.finish_reason) == ("interrupted", CLOSED) and row.answer_words >= 5
    words_shown = finish_words(row.status, row.finish_reason)
    assert "stopped by you" not in words_shown and words_shown.startswith("interrupted: the page was closed")


def test_a_looping_text_is_named_with_where_it_began_and_what_to_do():
    from tests.generation.test_loopguard import CHATTER, LOOP_LINE, essay_prefix
    from generation.counting import count_words
    from webapp.write_tab import looping_note

    before = essay_prefix() + CHATTER
    note = looping_note(before + LOOP_LINE * 30)
    at = int(note.split("at about ")[1].split(" words")[0].replace(",", ""))
    assert abs(at - count_words(before)) <= 10
    assert note.endswith("it was stopped. Continue with a plan, or with a higher repetition penalty.")
    assert finish_words("truncated", "looping") == "stopped: the text started repeating itself"
    view = WriteView(started_at=0.0)
    view.apply(Answer("It's grownll."), 1.0)
    view.apply(Done("looping", 10, 20), 2.0)
    assert view.status() == "truncated"  # not complete: the live view agrees with the row


def test_loops_stopped_inside_a_planned_text_are_named_with_where_and_what_was_done():
    from writing.status import loops_caught_note

    assert loops_caught_note({}, "stop") == "" and loops_caught_note(None, None) == ""
    loops = [{"section": 3, "at_words": 812, "penalty": 1.1}, {"section": 9, "at_words": 2_410, "penalty": 1.15}]
    assert loops_caught_note({"loops": loops}, "looping") == ""  # a text that ended looping has its own line
    note = loops_caught_note({"loops": loops}, "stop")
    assert note == ("The loop guard stopped 2 looping sections: section 3 (about 812 words), section 9 (about "
                    "2,410 words); it went on with the next section at a higher repetition penalty.")


def test_a_slow_model_is_named_as_such():
    from webapp.write_tab import slow_note

    view = WriteView(started_at=0.0)
    view.apply(Answer(words(5) + " "), 1.0)
    assert view.slow(5.0, 10_000) is None  # too early to judge
    view.apply(Answer(words(25, start=5) + " "), 20.0)  # 30 words in 20 s: 1.5 words a second
    pace, left = view.slow(21.0, 10_000)
    assert pace == pytest.approx(1.5) and left == pytest.approx(9_970 / 1.5)
    assert slow_note(pace, left, 10_000) == ("Writing slowly: this model writes 1.5 words a second; "
                                             "10,000 words would take about 1.8 hours more at this pace.")
    assert view.slow(21.0, 300) is None  # 270 more words at 1.5 a second: 3 minutes, it keeps up
    assert view.slow(21.0, None) is not None  # no target: under two words a second is slow
    view.apply(Answer(words(400, start=30)), 21.0)
    assert view.slow(21.0, None) is None


def test_a_request_in_another_language_is_refused_on_the_page(sqlite_engine):
    from webapp.write_tab import language_line

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct",
                  sampling={"repetition_penalty": 1.1})  # registered before entries recorded their languages
    line = language_line(sqlite_engine, model="smollm2-135m", prompt="写一篇关于灯塔的故事。")
    assert line.startswith("model 'smollm2-135m' writes English only, and this request is in Chinese")
    assert language_line(sqlite_engine, model="smollm2-135m", prompt="Write about a lighthouse.") is None


def test_the_model_list_says_what_each_model_is_for(sqlite_engine):
    from generation.bundled import BUNDLED_SAMPLING
    from webapp.write_tab import model_choices

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="plan", sampling=BUNDLED_SAMPLING)
        add_model(session, name="lwz-32b", backend="openai", base_url="http://gpu:8000/v1", template="think")
        add_model(session, name="tuned", backend="openai", base_url="http://gpu:8000/v1", template="direct",
                  sampling={"description": "DPO checkpoint from the arena votes"})
    assert model_choices(sqlite_engine) == [
        ("smollm2-135m — small English model on this machine; long texts are planned in sections", "smollm2-135m"),
        ("lwz-32b — model on a model server; plans in its head, then writes in one request", "lwz-32b"),
        ("tuned — DPO checkpoint from the arena votes; writes in one request", "tuned"),
    ]
