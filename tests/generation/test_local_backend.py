"""The embedded backend on the bundled model: streaming, the queue and its positions, cancel
(while queued and mid-stream), and a stored generation. A handful of tokens each."""

from __future__ import annotations

import asyncio

import pytest

from generation.backends import backend_for
from generation.backends.base import BackendRequest, Delta, Finish
from generation.events import Queued
from generation.request import GenerationRequest
from writing.store import generate_to_row
from storage.catalog import add_model
from storage.engine import session_scope
from storage.models import ModelEntry

pytestmark = pytest.mark.slow


def _request(max_tokens: int, **kwargs) -> BackendRequest:
    return BackendRequest(prompt="", system="You are a writer.", user="Write about the sea.", assistant="",
                          use_chat=True, max_tokens=max_tokens, seed=1, **kwargs)


@pytest.fixture(scope="module")
def local():
    return backend_for(ModelEntry(name="bundled", backend="local", template="think"))


def test_one_backend_per_model_folder(local):
    assert backend_for(ModelEntry(name="other-name", backend="local", template="direct")) is local


def test_streams_and_counts_tokens(local):
    async def go():
        return [item async for item in local.stream(_request(6))]

    items = asyncio.run(go())
    deltas = [i for i in items if isinstance(i, Delta)]
    finish = items[-1]
    assert isinstance(finish, Finish) and finish.finish_reason == "length" and finish.completion_tokens == 6
    assert "".join(d.text for d in deltas).strip() and sum(d.tokens for d in deltas) <= 6


def test_min_tokens_and_context(local):
    async def go():
        return [item async for item in local.stream(_request(10, min_tokens=10))], await local.context_length()

    items, context = asyncio.run(go())
    assert items[-1].completion_tokens == 10 and context == 8192


def test_banned_words_are_not_written(local):
    # What the service bans while it holds an answer open (its stop strings) the embedded model
    # may not write either: the word it writes first, greedily, is gone once banned.
    async def text(**kwargs):
        items = [item async for item in local.stream(_request(16, temperature=0.0, **kwargs))]
        return "".join(i.text for i in items if isinstance(i, Delta))

    def words(text):
        return [w.strip(".,;:!?\"'") for w in text.split()]

    word = next(w for w in words(asyncio.run(text())) if len(w) >= 3)
    assert word not in words(asyncio.run(text(bad_words=[word])))


def test_queue_positions_and_cancel_while_queued(local):
    async def go():
        cancel_third = asyncio.Event()

        async def run(request, cancel=None, began=None):
            seen = []
            async for item in local.stream(request, cancel=cancel):
                seen.append(item)
                if began is not None:
                    began.set()  # the request holds the model, or its place in the queue
                if isinstance(item, Queued) and cancel is not None:
                    cancel.set()  # give up while still waiting
            return seen

        first_began, second_began = asyncio.Event(), asyncio.Event()
        first = asyncio.ensure_future(run(_request(8), began=first_began))
        await first_began.wait()
        second = asyncio.ensure_future(run(_request(4), began=second_began))
        await second_began.wait()
        third = asyncio.ensure_future(run(_request(4), cancel=cancel_third))
        return await asyncio.gather(first, second, third)

    first, second, third = asyncio.run(go())
    assert not any(isinstance(i, Queued) for i in first)
    assert [i.position for i in second if isinstance(i, Queued)] == [1]
    assert [i.position for i in third if isinstance(i, Queued)][0] == 2
    assert not any(isinstance(i, Delta) for i in third) and third[-1].finish_reason == "cancelled"
    assert second[-1].completion_tokens == 4


def test_cancel_mid_stream_stops_generation(local):
    async def go():
        cancel = asyncio.Event()
        items = []
        async for item in local.stream(_request(400), cancel=cancel):
            items.append(item)
            if sum(isinstance(i, Delta) for i in items) == 2:
                cancel.set()
        return items

    items = asyncio.run(go())
    # The worker thread notices the cancel at its next token; on a busy machine the event loop
    # may hand over the cancel a few dozen tokens late, still far short of the 400 asked for.
    assert items[-1].finish_reason == "cancelled" and items[-1].completion_tokens < 200
    assert local.queue_length() == 0


def test_stored_generation_on_the_local_backend(sqlite_engine):
    with session_scope(sqlite_engine) as session:
        add_model(session, name="bundled", backend="local", template="think")
    gen = generate_to_row(sqlite_engine, model="bundled",
                         request=GenerationRequest("Write a haiku about tea.", think_budget=4, max_tokens=8, seed=3))
    assert gen.status in ("complete", "truncated") and gen.answer.strip()
    assert gen.params["api"] == "chat" and gen.params["budget"] == {"think": 4, "answer_max": 8, "answer_min": 0}
    assert gen.extra["forced_answer"] is True and gen.completion_tokens >= 8


def test_embedded_model_refuses_a_context_it_cannot_hold_with_the_numbers(sqlite_engine):
    """The embedded model keeps its trained 8,192 tokens: a 10,000-word target is refused before
    generating, with the prompt, the budget and the context in the message."""
    from core.errors import UserError
    from storage.catalog import add_model
    from storage.engine import session_scope

    with session_scope(sqlite_engine) as session:
        add_model(session, name="bundled", backend="local", template="direct")
    with pytest.raises(UserError, match=r"the prompt \(\d+ tokens\) plus the generation budget \(\d+ tokens.*context of 8192 tokens"):
        generate_to_row(sqlite_engine, model="bundled", request=GenerationRequest("Write a saga.", target_words=10000))
