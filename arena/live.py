"""Live battles: two anonymous models write for the same request at once, each at its own pace.

:func:`merge_streams` interleaves any number of async event streams in arrival order (never
lock-step: a fast side is never held back by a slow one). :func:`live_battle` runs two
``generate_and_store`` streams through it, yielding ``(side, event)`` pairs, and once both
have ended forms a ``mode="live"`` battle assigned to the annotator, but only when both
answers are complete; a truncated, failed or interrupted side never enters a battle.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import aclosing
from typing import Any, AsyncIterator

from sqlalchemy.engine import Engine

from storage.engine import session_scope
from core.errors import UserError
from storage.models import GenerationStatus, utcnow

_END = object()


async def merge_streams(streams: dict[str, AsyncIterator[Any]]) -> AsyncIterator[tuple[str, Any]]:
    """Yield ``(key, item)`` from every stream as soon as each item arrives.

    Each stream is drained by its own task into one queue; an exception in a stream is
    re-raised here; closing this generator cancels the tasks (and so closes the streams).
    """
    queue: asyncio.Queue = asyncio.Queue()

    async def drain(key: str, stream: AsyncIterator[Any]) -> None:
        try:
            async with aclosing(stream) as items:
                async for item in items:
                    await queue.put((key, item))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            await queue.put((key, exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            await queue.put((key, _END))

    tasks = [asyncio.ensure_future(drain(key, stream)) for key, stream in streams.items()]
    open_streams = len(tasks)
    try:
        while open_streams:
            key, item = await queue.get()
            if item is _END:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield key, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def pick_models(names: list[str], *, rng: random.Random) -> tuple[str, str]:
    """Two different model names drawn with ``rng``, in random side order."""
    distinct = sorted(set(names))
    if len(distinct) < 2:
        raise UserError("a live battle needs two registered models: add one with lwz models add")
    left, right = rng.sample(distinct, 2)
    return left, right


async def live_battle(
    engine: Engine, *, annotator_id: int, prompt: str, seed: int, target_words: int | None = None,
    max_tokens: int | None = None, name_words=None,
) -> AsyncIterator[tuple[str, Any]]:
    """Stream two anonymous sides; yields ``("left"|"right", event)`` then ``("battle", result)``.

    ``result`` is ``{"battle_id": id}`` when both sides completed, else ``{"message": why}``.
    Models are drawn from the registered ones with ``random.Random(seed)``; the seed also goes
    into both requests and onto the battle.
    """
    from generation.events import Started
    from generation.request import GenerationRequest
    from writing.store import generate_and_store
    from storage.catalog import list_models

    with session_scope(engine) as session:
        names = [m.name for m in list_models(session)]
    rng = random.Random(seed)
    left, right = pick_models(names, rng=rng)
    request = GenerationRequest(prompt=prompt, target_words=target_words, seed=seed, max_tokens=max_tokens)
    ids: dict[str, int] = {}
    started_at = utcnow()
    streams = {side: generate_and_store(engine, model=model, request=request)
               for side, model in (("left", left), ("right", right))}
    async for side, event in merge_streams(streams):
        if isinstance(event, Started):
            ids[side] = event.generation_id
        yield side, event
    yield "battle", finish_live_battle(engine, annotator_id=annotator_id, left_id=ids.get("left"),
                                       right_id=ids.get("right"), seed=seed, name_words=name_words,
                                       started_at=started_at)


def finish_live_battle(
    engine: Engine, *, annotator_id: int, left_id: int | None, right_id: int | None, seed: int, name_words=None,
    started_at=None,
) -> dict[str, Any]:
    """Pool both answers and form an assigned live battle, if and only if both are complete.

    The assignment is dated ``started_at`` (when streaming began): the annotator reads while
    the texts stream, so reading time runs from there.
    """
    from storage.votes import assign_battle
    from storage.arena import create_battle_with_extra
    from storage.generations import get_generation, set_in_pool
    from storage.engine import write_scope
    from arena.pool import DEFAULT_NAME_WORDS, names_found

    with write_scope(engine) as session:
        gens = [get_generation(session, generation_id=g) if g is not None else None for g in (left_id, right_id)]
        unfinished = [g.status if g else "failed" for g in gens if g is None or g.status != GenerationStatus.complete
                      or g.answer_words == 0]
        if unfinished:
            return {"message": f"no battle: a side ended {unfinished[0]} (only complete answers are judged)"}
        for gen in gens:
            set_in_pool(session, generation_id=gen.id)
        from storage.catalog import list_models

        words = list(name_words or DEFAULT_NAME_WORDS) + [m.name for m in list_models(session)]
        found = names_found([g.think for g in gens] + [g.answer for g in gens], words=words)
        extra = {"seed": seed, "names_model": bool(found), **({"names_found": found} if found else {})}
        battle = create_battle_with_extra(session, prompt_id=gens[0].prompt_id, left_generation_id=gens[0].id,
                                          right_generation_id=gens[1].id, mode="live", extra=extra)
        assignment = assign_battle(session, battle_id=battle.id, annotator_id=annotator_id)
        if started_at is not None:
            assignment.assigned_at = started_at
            session.add(assignment)
        return {"battle_id": battle.id}
