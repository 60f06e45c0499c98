"""The embedded model must not stall where nothing is shown: tokens whose text the streamer holds
back still count (the think budget cuts a plan that shows no text), and Stop on a queued request
takes it out of the queue at once. On the bundled model, a dozen tokens each.

Greedy decoding after a row of dots makes the bundled model write "-1000000…": no space, no
CJK character, no newline, so the streamer shows nothing until the end, as with a model looping
on "！！！" in a Chinese plan."""

from __future__ import annotations

import asyncio

import pytest

from generation.backends import backend_for
from generation.backends.base import BackendRequest, Delta, Finish
from generation.events import Queued
from generation.length import Budget
from generation.request import GenerationRequest
from generation.prepared import Plan
from generation.rendering import Rendered
from generation.service import run_plan
from generation.templates import template_named
from storage.models import ModelEntry

pytestmark = pytest.mark.slow
DOTS = "." * 32


@pytest.fixture(scope="module")
def local():
    return backend_for(ModelEntry(name="bundled", backend="local", template="think"))


def test_tokens_are_reported_while_their_text_is_held_back(local):
    request = BackendRequest(prompt=DOTS, system="", user="", assistant="", use_chat=False, max_tokens=12, temperature=0)

    async def go():
        return [item async for item in local.stream(request)]

    items = asyncio.run(go())
    deltas = [i for i in items if isinstance(i, Delta)]
    shown = next((n for n, d in enumerate(deltas) if d.text), len(deltas))
    assert sum(d.tokens for d in deltas[:shown]) >= 6  # counted before any text appeared
    assert sum(d.tokens for d in deltas) == items[-1].completion_tokens == 12


def test_the_think_budget_cuts_a_plan_that_has_shown_no_text(local):
    rendered = Rendered(template="think", language="en", raw=DOTS, system="", user="", prefill="")
    plan = Plan(request=GenerationRequest("dots", temperature=0), backend=local, template=template_named("think"),
                rendered=rendered, use_chat=False,
                budget=Budget(think=6, answer_max=6, answer_min=0), tokens_per_word=1.3, prompt_tokens=32,
                context=8192, seed=1)

    async def go():
        return [event async for event in run_plan(plan)]

    asyncio.run(go())
    assert plan.stats["forced_answer"] is True and plan.stats["think_tokens"] == 6


def test_stop_on_a_queued_request_removes_it_at_once(local):
    """Stop on the second of three requests ends its stream as cancelled while the first is
    still running, and the third moves up a place at once; the test then stops the first."""

    def request(user: str, max_tokens: int) -> BackendRequest:
        return BackendRequest(prompt="", system="You are a writer.", user=user, assistant="", use_chat=True,
                              max_tokens=max_tokens, seed=1)

    async def collect(stream, items: list, on_item=None) -> list:
        async for item in stream:
            items.append(item)
            if on_item is not None:
                on_item(item)
        return items

    async def go():
        running, second_queued = asyncio.Event(), asyncio.Event()
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        first, second, third = [], [], []

        def on_first(item):
            if isinstance(item, Delta):
                running.set()

        def on_second(item):
            if isinstance(item, Queued):
                second_queued.set()

        def on_third(item):
            if isinstance(item, Queued) and item.position == 2:
                stop_second.set()  # Stop on the queued second request
            elif isinstance(item, Queued) and item.position == 1:
                stop_first.set()  # the third moved up: the first may end now

        first_task = asyncio.ensure_future(collect(local.stream(request("Write about the sea.", 400), cancel=stop_first), first, on_first))
        await running.wait()
        second_task = asyncio.ensure_future(collect(local.stream(request("x", 2), cancel=stop_second), second, on_second))
        await second_queued.wait()
        await collect(local.stream(request("y", 2), cancel=stop_first), third, on_third)
        await asyncio.gather(first_task, second_task)
        return first, second, third

    first, second, third = asyncio.run(go())
    assert [i.position for i in second if isinstance(i, Queued)] == [1]
    assert second[-1] == Finish("cancelled") and not any(isinstance(i, Delta) for i in second)
    assert [i.position for i in third if isinstance(i, Queued)][:2] == [2, 1]
    # The first was stopped by the test, which happens only after the second left the queue:
    # had the second waited for its turn, the first would have run to its 400 tokens.
    assert first[-1].finish_reason == "cancelled" and first[-1].completion_tokens < 400
