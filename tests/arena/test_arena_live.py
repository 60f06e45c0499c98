"""Live battles: streams merged in arrival order (pure), and a real live battle on the vLLM server."""

from __future__ import annotations

import asyncio
import random

import pytest
import sqlalchemy as sa

from storage.catalog import add_model
from storage.engine import session_scope
from core.errors import UserError
from storage.models import Assignment, Battle, Generation
from storage.users import add_user
from arena.live import finish_live_battle, live_battle, merge_streams, pick_models


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a fresh thread: Playwright's sync API (a session fixture) keeps an event loop
    running in the main thread once a browser test has run, and ``asyncio.run`` refuses to nest."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


async def paced(items, delay):
    for item in items:
        await asyncio.sleep(delay)
        yield item


def test_merge_is_not_lock_step():
    """The slow side yields only once the fast side has yielded everything: a lock-step merge,
    waiting for one item of each side in turn, would never finish (the hang guard fails it)."""

    async def collect():
        fast_done = asyncio.Event()

        async def fast():
            for i in range(6):
                yield i
            fast_done.set()

        async def slow():
            await fast_done.wait()
            for i in range(2):
                yield i

        merged = [key async for key, _ in merge_streams({"fast": fast(), "slow": slow()})]
        return merged

    order = in_thread(asyncio.run, asyncio.wait_for(collect(), timeout=60))
    assert order == ["fast"] * 6 + ["slow"] * 2


def test_merge_reraises_a_failing_stream():
    async def broken():
        yield 1
        raise RuntimeError("side died")

    async def collect():
        return [item async for item in merge_streams({"a": broken(), "b": paced([1], 0.01)})]

    with pytest.raises(RuntimeError, match="side died"):
        in_thread(asyncio.run, collect())


def test_pick_models_needs_two_and_is_seeded():
    with pytest.raises(UserError, match="two registered models"):
        pick_models(["only"], rng=random.Random(0))
    picks = {pick_models(["a", "b", "c"], rng=random.Random(s)) for s in range(30)}
    assert all(left != right for left, right in picks) and len(picks) > 3
    assert pick_models(["a", "b"], rng=random.Random(4)) == pick_models(["b", "a"], rng=random.Random(4))


def test_incomplete_side_forms_no_battle(sqlite_engine):
    from storage.generations import create_generation, finish_generation
    from storage.catalog import get_or_add_prompt

    with session_scope(sqlite_engine) as session:
        user = add_user(session, name="ann", role="annotator")
        m1, m2 = add_model(session, name="m1", backend="local"), add_model(session, name="m2", backend="local")
        prompt, _ = get_or_add_prompt(session, text="Write.")
        ids = []
        for model, status in ((m1, "complete"), (m2, "truncated")):
            gen = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={})
            finish_generation(session, generation_id=gen.id, status=status, answer="some words here", answer_words=3)
            ids.append(gen.id)
    result = finish_live_battle(sqlite_engine, annotator_id=user.id, left_id=ids[0], right_id=ids[1], seed=1)
    assert "truncated" in result["message"]
    with session_scope(sqlite_engine) as session:
        assert session.execute(sa.select(sa.func.count(Battle.id))).scalar_one() == 0
        assert not any(g.in_pool for g in session.exec(sa.select(Generation)).scalars())


@pytest.mark.slow
def test_live_battle_on_vllm(sqlite_engine, vllm_server):
    with session_scope(sqlite_engine) as session:
        user = add_user(session, name="ann", role="annotator")
        for name in ("live-a", "live-b"):
            add_model(session, name=name, backend="openai", base_url=vllm_server.base_url,
                      model_id=vllm_server.model, template="direct")

    async def run():
        return [(side, event) async for side, event in live_battle(
            sqlite_engine, annotator_id=user.id, prompt="Write two sentences about a quiet harbour.",
            seed=3, max_tokens=200)]

    events = in_thread(asyncio.run, run())
    sides = [side for side, _ in events]
    assert sides[-1] == "battle" and {"left", "right"} <= set(sides)
    result = events[-1][1]
    with session_scope(sqlite_engine) as session:
        gens = list(session.exec(sa.select(Generation)).scalars())
        assert len(gens) == 2 and len({g.model_id for g in gens}) == 2
        assert [g.status for g in gens] == ["complete", "complete"], result
        battle = session.get(Battle, result["battle_id"])
        assert battle.mode == "live" and battle.extra["seed"] == 3
        assignment = session.exec(sa.select(Assignment)).scalars().one()
        assert assignment.battle_id == battle.id and assignment.annotator_id == user.id
        assert assignment.assigned_at <= min(g.created_at for g in gens) and all(g.in_pool for g in gens)
