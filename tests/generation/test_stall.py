"""The stall limit, through the real OpenAI client: a small local server that speaks the
OpenAI-compatible API sends its first tokens and then hangs. The generation must end as
``interrupted`` with a message naming the stall limit, not wait out the client's read timeout."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import UserError
from generation import stall
from generation.backends.base import BackendError, BackendRequest, Delta
from generation.request import GenerationRequest
from tests.helpers import ScriptedOpenAIServer

FIRST_WORDS = ["Autumn ", "light ", "falls "]


@pytest.fixture
def hanging_server():
    """``/v1/models``, ``/tokenize``, and a chat stream that stops after FIRST_WORDS and hangs,
    connection open, until the test ends."""
    with ScriptedOpenAIServer(lambda body: FIRST_WORDS, hang=True, model="fake", max_model_len=4096) as server:
        yield server.base_url


def test_a_stream_that_hangs_after_its_first_tokens_raises_a_stall_error(hanging_server):
    from generation.backends.openai_backend import OpenAIBackend

    backend = stall.StallGuarded(OpenAIBackend(base_url=hanging_server, model="fake"), seconds=3)
    request = BackendRequest(prompt="", system="s", user="Write about autumn.", assistant="", use_chat=True, max_tokens=50)
    items = []

    async def go():
        async for item in backend.stream(request):
            items.append(item)

    with pytest.raises(BackendError, match=r"no token for 3 s .*stall limit"):
        asyncio.run(go())
    assert "".join(i.text for i in items if isinstance(i, Delta)) == "".join(FIRST_WORDS)


def test_a_stalled_generation_is_stored_as_interrupted_with_its_first_words(hanging_server, sqlite_engine, monkeypatch):
    from writing.store import generate_to_row
    from storage.catalog import add_model
    from storage.engine import session_scope

    monkeypatch.setenv(stall.ENV_VAR, "3")
    with session_scope(sqlite_engine) as session:
        add_model(session, name="hangs", backend="openai", base_url=hanging_server, model_id="fake", template="direct")
    gen = generate_to_row(sqlite_engine, model="hangs", request=GenerationRequest("Write about autumn.", max_tokens=50))
    assert gen.status == "interrupted" and gen.finish_reason == "error"
    assert "stall limit" in gen.error and gen.answer == "".join(FIRST_WORDS).strip()


def test_the_stall_limit_comes_from_the_setting_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv(stall.ENV_VAR, raising=False)
    assert stall.stall_seconds() == stall.DEFAULT_STALL_SECONDS == 60
    monkeypatch.setenv(stall.ENV_VAR, "15")
    assert stall.stall_seconds() == 15
    stall.configure(0)
    try:
        assert stall.stall_seconds() == 0
    finally:
        stall.configure(None)
    monkeypatch.setenv(stall.ENV_VAR, "soon")
    with pytest.raises(UserError, match="LWZ_STALL_SECONDS must be a number of seconds"):
        stall.stall_seconds()
    with pytest.raises(UserError, match="between 0 and 86400"):
        stall.configure(-1)


def test_a_cancel_that_lands_with_a_token_is_not_lost():
    """Ctrl-C cancels the CLI's main task. When the cancel lands in the same loop turn as the next
    token, the guarded stream must still end with CancelledError (3.11's ``asyncio.wait_for``
    returned the token instead, and ``lwz generate`` then ignored Ctrl-C and wrote on)."""
    async def go():
        token = asyncio.get_running_loop().create_future()

        async def items():
            yield Delta(text="first ")
            yield await token

        async def consume():
            return [item async for item in stall.guard(items(), 30)]

        task = asyncio.ensure_future(consume())
        for _ in range(5):
            await asyncio.sleep(0)  # the consumer now waits for the second token
        token.set_result(Delta(text="second "))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
