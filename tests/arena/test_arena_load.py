"""Load: 50 annotators vote concurrently for 30 s through the app's HTTP interface on loopback.

Each annotator signs in and loops Next battle → vote → reveal as the Arena tab sends them: each
one POST outside Gradio's queue, the vote's answer carrying the reveal (see
:mod:`benchmarks.arena_load`, mode ``tab``). The run is bounded in time (30 s plus in-flight calls) and in
count (at most 20 votes per annotator). Every acknowledged vote must be stored exactly once,
and nothing may be stored that was not acknowledged.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from storage.models import User, Vote
from tests.live_app import start_live_app
from tests.arena.test_arena_live import in_thread
from benchmarks.arena_load import run_load
from arena.seed import seed_pool

pytestmark = pytest.mark.slow

ANNOTATORS = 50
DURATION_S = 30.0
MAX_VOTES = 20


def test_fifty_annotators_every_acknowledged_vote_stored_once(tmp_path):
    users = [(f"ann{i:02d}", "annotator", f"pw{i}") for i in range(ANNOTATORS)]
    with start_live_app(tmp_path, auth=True, users=users) as app:
        seed_pool(app.engine, models=["m-a", "m-b", "m-c", "m-d"], prompts=10, words=200, seed=11)
        result = in_thread(asyncio.run, run_load(app.url, [(n, p) for n, _, p in users], duration_s=DURATION_S,
                                      seed=11, max_votes=MAX_VOTES, mode="tab"))
        with session_scope(app.engine) as session:
            rows = session.execute(sa.select(User.name, Vote.battle_id).join(User, User.id == Vote.annotator_id)).all()
    print(result.summary())
    assert result.errors == [] and result.refused == []
    assert len(result.acked) >= ANNOTATORS, "every annotator should get at least one vote in"
    acked = [(name, battle) for name, battle, _ in result.acked]
    assert len(set(acked)) == len(acked), "the server acknowledged the same battle twice to one annotator"
    stored = [(name, battle) for name, battle in rows]
    assert sorted(stored) == sorted(acked)
