"""Generation as a stream of typed events, with no database: a request is checked and planned
(:func:`prepare`), then run by its template (:func:`run_plan`), or a stored text is picked up
again (:func:`resume_plan`). :func:`stream_generation` does both for a new text.

``prepare`` does what every template shares: the model's backend, its own sampling (a repetition
penalty registered with the model applies unless the request sets one), the template chosen
through the table (``generation.templates.choose``: ``auto`` picks by length), the request
rendered, and the model's context, tokens per word and an upper bound of the prompt's tokens,
asked of the server at once. The template's own ``prepare`` then sets the budget. Every request
is checked against the model's context before anything is generated. Writing the result into a
row is the stored workflow's job (``writing``).
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from dataclasses import replace
from typing import AsyncIterator, Optional

from core.errors import UserError
from generation.events import Answer, Error, Event, Think
from generation.prepared import Plan, Setup, first_failure_raised, probe
from generation.request import GenerationRequest
from generation.templates import choose, holds_words

__all__ = ["GenerationRequest", "Plan", "prepare", "run_plan", "resume_plan", "stream_generation", "collect_text"]


async def prepare(entry, request: GenerationRequest, *, template: Optional[str] = None) -> Plan:
    """Check ``request`` against ``entry``'s model and plan its budget. Raises UserError (bad
    template, unreachable backend, unknown model id, over the context) before any generation.
    ``template`` overrides the entry's (the writer's pick, or the template a stored text began with)."""
    from generation.backends import backend_for
    from generation.tokenization import tokens_per_word

    backend = backend_for(entry)
    settings = entry.sampling or {}
    model_penalty = settings.get("repetition_penalty")
    if request.repetition_penalty is None and model_penalty is not None:  # the model's own; the row records it
        request = replace(request, repetition_penalty=model_penalty)
    try:
        choice = choose(template or entry.template, target_words=request.target_words,
                        holds_words=holds_words(settings), by_writer=template is not None)
    except UserError as exc:
        raise UserError(f"model {entry.name!r}: {exc}") from None
    rendered = choice.template.render(request.prompt)
    use_chat = settings.get("api", "chat") == "chat"
    # The server calls run at once (and are cached after the first generation); the first failure
    # in this order is reported, the model check first (it names the server and lists the served models).
    context, tpw, at_most = await first_failure_raised(
        backend.context_length(), tokens_per_word(backend, rendered.language),
        backend.prompt_tokens_at_most(probe(rendered, use_chat)))
    setup = Setup(request, backend, choice.template, rendered, use_chat, context, tpw, at_most, choice.record())
    return await choice.template.prepare(setup)


async def run_plan(plan: Plan, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Stream a prepared plan with its template: Queued, Think and Answer events, then Done, or
    Error on failure. ``plan.stats`` holds what the template records (rounds, ending, sections)."""
    async with aclosing(plan.template.run(plan, cancel=cancel)) as events:
        async for event in events:
            yield event


async def resume_plan(plan: Plan, *, think: str, answer: str, sections: Optional[list] = None,
                      cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """The events that continue a stored text (``think``, ``answer``, and for a planned text the
    ``sections`` already written) with the plan's template. Awaited, it checks that the text can
    be continued (UserError, before anything is generated) and returns the stream."""
    return await plan.template.resume(plan, think=think, answer=answer, sections=list(sections or []), cancel=cancel)


async def stream_generation(entry, request: GenerationRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Generate for ``request`` with ``entry``'s model; no database. Bad requests raise
    UserError at the first iteration, before anything is generated; backend failures while
    streaming come as an Error event. Cancelling (``cancel.set()`` or closing the iterator)
    aborts the server request."""
    plan = await prepare(entry, request)
    async with aclosing(run_plan(plan, cancel=cancel)) as events:
        async for event in events:
            yield event


async def collect_text(entry, request: GenerationRequest, *, failure: str) -> tuple[str, str]:
    """The think and answer text of one ``stream_generation``, with no database; an Error event is a
    UserError reading ``"{failure}: {message}"``."""
    think, answer = [], []
    async with aclosing(stream_generation(entry, request)) as events:
        async for event in events:
            if isinstance(event, Think):
                think.append(event.text)
            elif isinstance(event, Answer):
                answer.append(event.text)
            elif isinstance(event, Error):
                raise UserError(f"{failure}: {event.message}")
    return "".join(think), "".join(answer)
