"""A new text generated into its row: ``generation``'s stream, with the row kept in step."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import AsyncIterator, Optional

from generation.events import Event, Started
from generation.request import GenerationRequest
from generation.service import prepare, run_plan
from generation.templates import method_template
from storage.engine import session_scope
from storage.generations import get_generation
from writing.models import lookup_model
from writing.recording import GenerationRecorder, recorded

SAVE_INTERVAL_S = 2.0


async def generate_and_store(
    engine,
    *,
    model: str,
    request: GenerationRequest,
    author_id: Optional[int] = None,
    category: Optional[str] = None,
    cancel: Optional[asyncio.Event] = None,
    template: Optional[str] = None,
    method: Optional[str] = None,
) -> AsyncIterator[Event]:
    """``generation.service`` with a generations row: yields ``Started(id)`` first, saves the
    partial text at least every 2 s, and finishes the row on every exit path (complete,
    truncated, interrupted on cancel/close/backend death, failed). Bad input raises UserError
    before any row is written. ``template`` overrides the model's own; so does the writer's
    ``method`` (``generation.templates.METHODS``: auto, one request, plan)."""
    entry = lookup_model(engine, name=model)
    if method is not None:
        template = method_template(method, entry.template) or template
    plan = await prepare(entry, request, template=template)
    recorder = GenerationRecorder.create(engine, entry=entry, request=request, plan_params=plan.params(),
                                         author_id=author_id, category=category)
    async with aclosing(recorded(recorder, run_plan(plan, cancel=cancel), finish=lambda: recorder.finish(extra=plan.stats),
                                 save_interval_s=SAVE_INTERVAL_S)) as events:
        async for event in events:
            yield event


def generate_to_row(engine, *, stop_at: Optional[float] = None, **kwargs):
    """:func:`generate_and_store` run to the end; returns the finished Generation row.
    For CLIs, tests and benchmarks (it runs its own event loop). ``stop_at`` (a ``time.time()``
    value) cancels the run then, as a closed page does; the row keeps what it wrote."""

    async def consume() -> int:
        generation_id = None
        if stop_at is not None:
            kwargs["cancel"] = cancel = asyncio.Event()
            asyncio.get_running_loop().call_later(max(0.0, stop_at - time.time()), cancel.set)
        async with aclosing(generate_and_store(engine, **kwargs)) as events:
            async for event in events:
                if isinstance(event, Started):
                    generation_id = event.generation_id
        return generation_id

    generation_id = asyncio.run(consume())
    with session_scope(engine) as session:
        return get_generation(session, generation_id=generation_id)
