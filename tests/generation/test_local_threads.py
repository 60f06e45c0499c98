"""The embedded backend generates on one torch thread (``GENERATION_THREADS``), whatever the
process's own setting: a 135M model's ops are too small to split, and two threads on two cores
mostly wait for each other (docs/benchmarks.md, "The default's speed")."""

from __future__ import annotations

import asyncio

import pytest
import torch

from generation.backends.base import BackendRequest, Finish
from generation.backends.local import GENERATION_THREADS, LocalBackend
from generation.bundled import ensure_bundled_model

pytestmark = pytest.mark.slow


def test_every_forward_pass_runs_on_the_generation_threads():
    if torch.get_num_threads() == GENERATION_THREADS:
        torch.set_num_threads(GENERATION_THREADS + 1)  # so that the process's setting differs from the worker's
    backend = LocalBackend(str(ensure_bundled_model()))
    model, _ = backend._load()
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    request = BackendRequest(prompt="", system="You are a writer.", user="Write about the sea.", assistant="",
                             use_chat=True, max_tokens=4, min_tokens=4, seed=1)

    async def go():
        return [item async for item in backend.stream(request)]

    try:
        items = asyncio.run(go())
    finally:
        hook.remove()
        backend.shutdown()
    assert isinstance(items[-1], Finish) and items[-1].completion_tokens == 4
    assert len(seen) == 4 and set(seen) == {GENERATION_THREADS}
    assert torch.get_num_threads() != GENERATION_THREADS  # the caller's own setting is left alone
