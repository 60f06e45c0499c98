"""Continuing a stored text on scripted backends: the row grows, the plan template resumes at its
next section, and a text its context cannot hold is refused with the numbers. The real server
and a fresh process run in test_cli.py."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from core.errors import UserError
from writing.continuation import continue_and_store
from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from storage.generations import create_generation, finish_generation, get_generation
from tests.generation.test_control_logic import SizedBackend, words

PLAN = ("Section 1 - Main point: the storm - Word count: 40 words\n"
        "Section 2 - Main point: the rescue - Word count: 60 words\n")


def stored(engine, *, template: str, think: str, answer: str, params: dict, status: str = "interrupted") -> int:
    with session_scope(engine) as session:
        model = add_model(session, name="m", backend="openai", base_url="http://x/v1", model_id="m", template="direct")
        prompt, _ = get_or_add_prompt(session, text="Write a story.", source="test")
        row = create_generation(session, prompt_id=prompt.id, model_id=model.id,
                                params={"template": template, "seed": 5, **params})
        finish_generation(session, generation_id=row.id, status=status, think=think, answer=answer,
                          answer_words=len(answer.split()), completion_tokens=50)
        return row.id


def run(engine, generation_id):
    async def go():
        async with aclosing(continue_and_store(engine, generation_id=generation_id)) as events:
            return [event async for event in events]

    return asyncio.run(go())


def test_plan_template_continues_at_its_next_section(monkeypatch, sqlite_engine):
    import generation.backends

    backend = SizedBackend(at_most=50, exact=50, replies=[(words(60) + ".", "stop")])
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    first = words(40) + "."
    gid = stored(sqlite_engine, template="plan", think=PLAN, answer=first, params={
        "target_words": 100, "sections": [{"point": "the storm", "budget": 40, "words": 40, "finish": "stop"}]})
    run(sqlite_engine, gid)
    assert len(backend.requests) == 1 and "section 2 of 2: the rescue" in backend.requests[0].user
    with session_scope(sqlite_engine) as session:
        row = get_generation(session, generation_id=gid)
        assert row.answer.startswith(first) and row.answer_words == 100 and row.think == PLAN.strip()
        assert [s["words"] for s in row.params["sections"]] == [40, 60]
        (record,) = row.params["continuations"]
        assert record["from_words"] == 40 and record["to_words"] == 100
        assert row.status == "complete" and row.completion_tokens > 50


def test_a_text_the_context_cannot_hold_is_refused_with_the_numbers(monkeypatch, sqlite_engine):
    import generation.backends

    backend = SizedBackend(at_most=50, exact=8190, replies=[])
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    gid = stored(sqlite_engine, template="direct", think="", answer=words(300) + ".", params={"target_words": 500})
    with pytest.raises(UserError, match=r"its text so far is \d+ tokens \(8,190 with the prompt\).*context is 8,192 tokens"):
        run(sqlite_engine, gid)
    assert backend.requests == []
    with session_scope(sqlite_engine) as session:
        assert get_generation(session, generation_id=gid).status == "interrupted"  # untouched
