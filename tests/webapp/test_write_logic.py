"""The Write tab's logic without a browser: input checks, the event-folded view, the run registry."""

import asyncio

import pytest

from generation.events import Answer, Done, Error, Queued, Started, Think
from core.errors import UserError
from webapp.writing import MAX_REQUEST_CHARS, ActiveRuns, WriteView, check_inputs


def _check(**kw):
    base = dict(prompt="Write a story.", target_words=None, model="m", known_models=["m"])
    base.update(kw)
    return check_inputs(**base)


def test_check_inputs_defaults_and_numbers():
    got = _check(target_words=3000.0, seed="42", think_budget=0, temperature=0.8, top_p=None)
    assert (got.target_words, got.seed, got.think_budget, got.temperature, got.top_p) == (3000, 42, None, 0.8, 0.95)
    assert _check(target_words=0).target_words is None and _check(target_words="").target_words is None
    # Cleaned once, by GenerationRequest (outer blanks and control characters go; markup is only text).
    assert _check(prompt="  <script>alert(1)</script>\x00  ").prompt == "<script>alert(1)</script>"


@pytest.mark.parametrize("kw,message", [
    (dict(prompt=""), "the prompt is empty"),
    (dict(prompt=" \n\t "), "the prompt is empty"),
    (dict(prompt=None), "the prompt must be text"),
    (dict(prompt="x" * 200_000), f"the prompt is 200,000 characters, over the limit of {MAX_REQUEST_CHARS:,}"),
    (dict(target_words=-5), "the target must be a whole number of words from 1 to 100,000, got -5"),
    (dict(target_words=2.5), "the target must be a whole number of words"),
    (dict(target_words=500_000), "the target must be a whole number of words from 1 to 100,000, got 500000"),
    (dict(model="other"), "unknown model 'other': pick one of m"),
    (dict(model=None), "pick a model"),
    (dict(temperature=3), "the temperature must be between 0 and 2"),
    (dict(seed="abc"), "the seed must be a whole number"),
    (dict(think_budget=-1), "the think budget must be a whole number of tokens"),
])
def test_check_inputs_refuses_with_one_line(kw, message):
    with pytest.raises(UserError) as err:
        _check(**kw)
    assert message in str(err.value) and "\n" not in str(err.value)



@pytest.mark.parametrize("field,value", [
    ("prompt", ""), ("prompt", None), ("target_words", -5), ("target_words", 2.5), ("target_words", "many"),
    ("temperature", 3), ("temperature", "hot"), ("top_p", 0), ("seed", "abc"), ("seed", -1), ("think_budget", -1),
])
def test_the_write_tab_says_what_the_request_says(field, value):
    """One owner for the form's values: the tab's refusal is GenerationRequest's, word for word."""
    from generation.request import GenerationRequest

    with pytest.raises(UserError) as by_request:
        GenerationRequest.from_form(**{"prompt": "Write a story.", field: value})
    with pytest.raises(UserError) as by_tab:
        _check(**{field: value})
    assert str(by_tab.value) == str(by_request.value)

def test_view_folds_a_think_then_answer_stream():
    view = WriteView(started_at=0.0)
    assert view.thinking_state(0.5) == ("pending", None)
    for t, event in [(0.1, Started(7)), (0.2, Queued(2)), (0.3, Queued(1))]:
        view.apply(event, t)
    assert view.generation_id == 7 and view.queue_position == 1
    view.apply(Think("Plan: "), 1.0)
    view.apply(Think("three acts."), 1.5)
    assert view.queue_position is None and view.thinking_state(3.0) == ("thinking", 2.0)
    view.apply(Answer("Once"), 4.0)
    view.apply(Answer(" upon a time."), 4.5)
    assert view.think == "Plan: three acts." and view.answer == "Once upon a time."
    assert view.thinking_state(9.0) == ("done", 3.0) and view.status() == "streaming"
    view.apply(Done("length", 10, 55), 6.0)
    assert view.ended and view.status() == "truncated" and view.completion_tokens == 55


def test_view_without_plan_and_with_errors():
    view = WriteView(started_at=0.0)
    view.apply(Answer("Straight to it."), 1.0)
    assert view.thinking_state(2.0) == ("none", None)
    view.apply(Error("the model server at http://h/v1 closed the stream"), 2.0)
    assert view.status() == "interrupted" and view.error.startswith("the model server")
    empty = WriteView(started_at=0.0)
    empty.apply(Error("cannot reach"), 1.0)
    assert empty.status() == "failed" and empty.thinking_state(1.0) == ("none", None)
    stopped = WriteView(started_at=0.0)
    stopped.apply(Think("half a plan"), 1.0)
    stopped.apply(Done("cancelled"), 2.0)
    assert stopped.status() == "interrupted" and stopped.thinking_state(5.0) == ("done", 1.0)


def test_active_runs_cancel_only_the_owners_runs():
    async def scenario():
        runs = ActiveRuns(max_per_user=2)
        a1 = runs.add(owner="ann", session="s1")
        a2 = runs.add(owner="ann", session="s2")
        b1 = runs.add(owner="bob", session="s1")
        with pytest.raises(UserError, match="already have 2"):
            runs.add(owner="ann", session="s3")
        assert runs.cancel(owner="mallory") == 0
        assert runs.cancel(owner="bob", session="s2") == 0
        assert runs.cancel(owner="ann", session="s1") == 1
        await asyncio.sleep(0)
        assert a1.cancel.is_set() and not a2.cancel.is_set() and not b1.cancel.is_set()
        a2.generation_id = 9
        assert runs.cancel(owner="ann", generation_id=8) == 0
        assert runs.cancel(owner="ann", generation_id=9) == 1
        await asyncio.sleep(0)
        assert a2.cancel.is_set()
        runs.remove(a1)
        runs.remove(a2)
        runs.remove(a2)
        assert runs.count("ann") == 0 and runs.count("bob") == 1

    asyncio.run(scenario())


WAIT_FOR_TICK = object()
"""In a timeline: the producer waits here until the consumer has been given the tick."""


def _events_of(timeline, tick_after):
    """What ``_events`` yields for a producer putting ``timeline``'s items, with a tick after ``tick_after`` s.

    No item waits on the clock: a ``WAIT_FOR_TICK`` holds the producer until the tick came, so a
    missing tick hangs the producer and the hang guard fails the test."""
    import time

    from webapp.writing import _SENTINEL, Run, _events

    async def scenario():
        queue: asyncio.Queue = asyncio.Queue()
        run = Run(owner="ann", session=None, cancel=asyncio.Event(), loop=asyncio.get_running_loop())
        ticked = asyncio.Event()

        async def produce():
            for item in timeline:
                if item is WAIT_FOR_TICK:
                    await ticked.wait()
                    continue
                queue.put_nowait(item)
                await asyncio.sleep(0)
            queue.put_nowait(_SENTINEL)

        task = asyncio.ensure_future(produce())
        got = []
        async for item in _events(queue, task, run, time.monotonic() + tick_after):
            got.append(item)
            if item is None:
                ticked.set()
        await task
        return got, run.cancel.is_set()

    async def guarded():
        return await asyncio.wait_for(scenario(), timeout=60)

    return asyncio.run(guarded())


def test_events_tick_once_while_the_first_words_are_slow_and_lose_nothing():
    got, cancelled = _events_of(["started", WAIT_FOR_TICK, "first words", "more", "done"], tick_after=0.05)
    assert got == ["started", None, "first words", "more", "done"] and not cancelled


def test_events_do_not_tick_when_the_stream_is_quick():
    got, _ = _events_of(["started", "first words", "done"], tick_after=30.0)
    assert got == ["started", "first words", "done"]


def test_view_phase_changes_with_the_queue_the_plan_and_the_answer():
    view = WriteView(started_at=0.0)
    phases = [view.phase()]
    for t, event in enumerate([Queued(2), Think("plan"), Think(" more"), Answer("Once"), Answer(" upon")], 1):
        view.apply(event, float(t))
        phases.append(view.phase())
    assert phases == [(None, False, False), (2, False, False), (None, True, False), (None, True, False),
                      (None, True, True), (None, True, True)]


def test_a_page_closed_as_words_arrive_still_stops_the_generation():
    """Gradio cancels the stream's task when the page goes. A cancel that lands in the same loop
    turn as the next event must still end ``_events`` and set the run's cancel event (3.11's
    ``asyncio.wait_for`` returned the event instead, and the text was written on for no one)."""
    import time

    from webapp.writing import Run, _events

    async def scenario():
        queue: asyncio.Queue = asyncio.Queue()
        run = Run(owner="ann", session=None, cancel=asyncio.Event(), loop=asyncio.get_running_loop())
        producer = asyncio.ensure_future(run.cancel.wait())

        async def consume():
            return [item async for item in _events(queue, producer, run, time.monotonic() + 30)]

        consumer = asyncio.ensure_future(consume())
        for _ in range(5):
            await asyncio.sleep(0)  # the consumer now waits for its first event, before the tick
        queue.put_nowait("first words")
        consumer.cancel()
        await asyncio.wait({consumer}, timeout=30)  # a hang guard: a lost cancel leaves it waiting
        return consumer.cancelled(), run.cancel.is_set()

    assert asyncio.run(scenario()) == (True, True)


def updates_per_1k_words(words_per_s: float, *, start: int, due) -> int:
    """Streamed updates ``due`` grants while a text grows from ``start`` to ``start + 1000`` words,
    one word (six characters) at a time at ``words_per_s``."""
    updates, last_sent, sent_chars = 0, 0.0, 6 * start
    for i in range(1, 1001):
        words, now = start + i, i / words_per_s
        if due(words=words, elapsed=now - last_sent, new_chars=6 * words - sent_chars):
            updates, last_sent, sent_chars = updates + 1, now, 6 * words
    return updates


@pytest.mark.parametrize("start", [0, 4000, 9000])
def test_updates_per_1000_words_do_not_grow_when_the_model_slows(start):
    """The app's and the page's work per update grows with the text; paced by time alone, a model
    that slows down (as they do at length) made every 1,000 words cost more updates (twice as
    many at half the speed). Paced by what was written, at 18 and at 9 words a second it is the same."""
    from webapp.write_tab import MAX_QUIET_S, update_due

    fast, slow = (updates_per_1k_words(speed, start=start, due=update_due) for speed in (18.0, 9.0))
    assert fast > 0
    assert slow <= fast * 1.1
    # ...and a slow model's text still shows every MAX_QUIET_S at least
    assert updates_per_1k_words(1.0, start=start, due=update_due) >= 1000 / MAX_QUIET_S


def test_updates_come_less_often_as_the_text_grows_and_never_faster_than_the_interval():
    from webapp.write_tab import update_due, update_interval

    assert updates_per_1k_words(100.0, start=9000, due=update_due) < updates_per_1k_words(100.0, start=0, due=update_due)
    assert not update_due(words=10_000, elapsed=update_interval(10_000) * 0.99, new_chars=10_000)
    assert update_due(words=10_000, elapsed=update_interval(10_000), new_chars=60)
    assert not update_due(words=10_000, elapsed=1.0, new_chars=59)
