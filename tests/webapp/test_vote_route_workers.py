"""The arena's JSON routes take requests in turn on SQLite and overlap a few on PostgreSQL.

Back to back, 50 annotators each waiting on one request: with every request on a thread of its
own, SQLite's writers contended for the lock and the interpreter and late arrivals were served
out of order, which set the p99 (see docs/benchmarks.md, "Scale-out"). These tests send 24
requests at once through the real middleware, with the route's work replaced by one that
records how many run together and in which order they started.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from storage.engine import make_engine, upgrade
from webapp.app import AppContext, ServeSettings
from webapp.auth import ensure_local_user
from webapp.vote_api import VOTE_PATH, ArenaRoutes, arena_workers

REQUESTS = 24


def run_burst(db_url: str) -> tuple[int, list[int], list[int]]:
    """(most requests worked at once, the order work started in, the status codes)."""
    engine = make_engine(db_url)
    upgrade(engine)
    ensure_local_user(engine)
    routes = ArenaRoutes(None, ctx=AppContext(engine=engine, settings=ServeSettings(auth=False)))
    guard, state = threading.Lock(), {"active": 0, "peak": 0, "started": []}

    def work(_who, payload):
        with guard:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            state["started"].append(payload["n"])
        time.sleep(0.02)
        with guard:
            state["active"] -= 1
        return {"n": payload["n"]}

    routes.routes[VOTE_PATH] = work

    async def burst():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=routes), base_url="http://arena") as client:
            tasks = []
            for n in range(REQUESTS):
                tasks.append(asyncio.create_task(client.post(VOTE_PATH, json={"n": n})))
                await asyncio.sleep(0.002)  # each request arrives, and queues, before the next is sent
            return await asyncio.gather(*tasks)

    answers = asyncio.run(burst())
    engine.dispose()
    assert [a.json() for a in answers] == [{"n": n} for n in range(REQUESTS)]
    return state["peak"], state["started"], [a.status_code for a in answers]


def test_on_sqlite_arena_requests_are_worked_one_at_a_time_in_arrival_order(tmp_path):
    peak, started, statuses = run_burst(f"sqlite:///{tmp_path / 'arena.db'}")
    assert statuses == [200] * REQUESTS
    assert peak == 1
    assert started == list(range(REQUESTS))


@pytest.mark.postgres
def test_on_postgresql_a_few_arena_requests_overlap_and_no_more(pg_url):
    peak, _started, statuses = run_burst(pg_url)
    assert statuses == [200] * REQUESTS
    assert 1 < peak <= arena_workers(make_engine(pg_url))
