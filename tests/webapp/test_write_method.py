"""The Write tab's method: which method writes a request and why, shown before it starts, and the
writer's pick carried into the stored text. Scripted backend; the page itself is the browser tests'."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from core.errors import UserError
from generation.request import GenerationRequest
from storage.engine import session_scope
from storage.generations import list_generations
from tests.generation.test_control_logic import SizedBackend, words
from webapp.writing import check_inputs, method_line
from writing.models import register_model
from writing.store import generate_and_store


@pytest.fixture
def models(sqlite_engine):
    with session_scope(sqlite_engine) as session:
        register_model(session, name="smollm2-135m", backend="local")
        register_model(session, name="remote", backend="openai", base_url="http://127.0.0.1:9/v1", model_id="remote")
    return sqlite_engine


def test_the_line_says_which_method_runs_and_why(models):
    line = method_line(models, model="smollm2-135m", target_words=3000.0)
    assert line == "Method: 3,000 words > 500 this model holds in one request: planned in sections"
    assert method_line(models, model="smollm2-135m", target_words=400) == (
        "Method: 400 words ≤ 500 this model holds in one request: written in one request")
    assert method_line(models, model="smollm2-135m", target_words=None, method="plan") == (
        "Method: chosen by you: planned in sections")
    assert method_line(models, model="remote", target_words=3000) == (
        "Method: this model's template is think: written in one request")
    assert method_line(models, model="nope", target_words=10).startswith("Method: no model named 'nope'")
    assert method_line(models, model=None, target_words=10) == ""


def test_an_unknown_method_is_refused_in_one_line():
    with pytest.raises(UserError, match="unknown method 'fastest'"):
        check_inputs(prompt="Write.", target_words=None, model="m", method="fastest", known_models=["m"])
    assert check_inputs(prompt="Write.", target_words=None, model="m", method="plan", known_models=["m"]).method == "plan"


def test_the_writer_s_pick_decides_the_stored_text_s_template(models, monkeypatch):
    import generation.backends

    backend = SizedBackend(at_most=60, exact=60, replies=[(words(30) + ".", "stop")] * 4)
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    request = GenerationRequest("Write a long story.", target_words=3000, max_tokens=40, seed=1)

    async def go():
        async with aclosing(generate_and_store(models, model="smollm2-135m", request=request,
                                               method="one request")) as events:
            return [e async for e in events]

    asyncio.run(go())
    with session_scope(models) as session:
        (row,) = list_generations(session)
        assert row.params["template"] == "direct" and row.params["method"]["asked"] == "direct"
        assert row.params["method"]["why"].startswith("chosen by you: written in one request (3,000 words > 500")
