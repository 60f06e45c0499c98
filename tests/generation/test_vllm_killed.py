"""The server dies mid-stream: the row must end ``interrupted`` with the text written so far
and an error naming the server. This test starts (and kills) a private vLLM server, the second
and last one a CI run starts."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from generation.events import Answer, Error, Started
from generation.request import GenerationRequest
from writing.store import generate_and_store
from tests.generation.helpers import register, row
from tests.vllm_server import start_vllm_server

pytestmark = pytest.mark.slow


def test_server_killed_mid_stream_leaves_interrupted_row_with_partial_text(sqlite_engine):
    server = start_vllm_server(kv_cache_gib=1, quick_start=True)
    try:
        register(sqlite_engine, "doomed", base_url=server.base_url, model=server.model, template="direct")
        request = GenerationRequest("Write a very long story about a harbour town.", target_words=1500, seed=11)

        async def go():
            streamed, generation_id, errors = "", None, []
            async with aclosing(generate_and_store(sqlite_engine, model="doomed", request=request)) as events:
                async for event in events:
                    if isinstance(event, Started):
                        generation_id = event.generation_id
                    elif isinstance(event, Answer):
                        streamed += event.text
                        if len(streamed.split()) >= 20 and server.process.poll() is None:
                            server.kill()
                    elif isinstance(event, Error):
                        errors.append(event.message)
            return generation_id, streamed, errors

        generation_id, streamed, errors = asyncio.run(go())
    finally:
        server.stop()
    assert len(errors) == 1 and server.base_url in errors[0] and "mid-stream" in errors[0]
    gen = row(sqlite_engine, generation_id)
    assert gen.status == "interrupted" and gen.finish_reason == "error"
    assert gen.answer == streamed.strip() and gen.answer_words >= 20
    assert server.base_url in gen.error
