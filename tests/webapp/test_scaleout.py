"""Two real ``lwz serve --auth`` processes on one PostgreSQL database, as behind a load balancer.

A sign-in made on one process is honoured by the other, signing out on one ends it on both,
and votes sent through both at once (the same vote to both, many annotators together) are
stored exactly once each: 0 lost, 0 doubled.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from arena.rules import ArenaSettings
from arena.seed import seed_pool
from arena.service import next_battle
from storage.engine import session_scope
from storage.models import User, Vote
from tests.live_app import http_session, start_live_app

pytestmark = pytest.mark.slow

ANNOTATORS = [(f"ann{i}", "annotator", f"pw-{i}") for i in range(8)]
ROUNDS = 3
VOTE = "/api/arena/vote"


@pytest.fixture
def pair(tmp_path, pg_url):
    with start_live_app(tmp_path / "a", auth=True, users=ANNOTATORS, db_url=pg_url) as one:
        seed_pool(one.engine, models=["model-x", "model-y", "model-z"], prompts=4, words=60, seed=7)
        with start_live_app(tmp_path / "b", auth=True, db_url=pg_url) as two:
            yield one, two


def signed_in_on(app, name: str, password: str):
    return http_session(app, name, password)


def same_cookies(client, other_app):
    """A client on ``other_app`` carrying ``client``'s sign-in cookie, as a load balancer would send it."""
    moved = http_session(other_app)
    for key, value in client.cookies.items():
        moved.cookies.set(key, value)
    return moved


def test_a_sign_in_on_one_process_works_on_the_other_and_sign_out_ends_both(pair):
    one, two = pair
    on_one = signed_in_on(one, "ann0", "pw-0")
    on_two = same_cookies(on_one, two)
    assert on_two.get("/config").status_code == 200
    assert '"auth_required":true' not in on_two.get("/").text.replace(" ", "")
    on_two.post("/logout")
    for client in (on_one, same_cookies(on_one, two)):
        assert client.get("/config").status_code == 401
        assert '"auth_required":true' in client.get("/").text.replace(" ", "")  # the sign-in page, no error


def test_votes_through_both_processes_at_once_are_stored_exactly_once(pair):
    one, two = pair
    with session_scope(one.engine) as session:
        ids = {u.name: u.id for u in session.scalars(sa.select(User))}
    acked: list[tuple[str, int, int, bool]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def annotator(name: str, password: str, first):
        home = signed_in_on(first, name, password)
        clients = [home, same_cookies(home, two if first is one else one)]
        for _ in range(ROUNDS):
            shown = next_battle(one.engine, annotator_id=ids[name], settings=ArenaSettings())
            if "battle" not in shown:
                errors.append(f"{name}: {shown}")
                return
            battle = shown["battle"]["battle_id"]
            answers: list = [None, None]

            def send(i, answers=answers, battle=battle):
                answers[i] = clients[i].post(VOTE, json={"battle_id": battle, "winner": "left"})

            senders = [threading.Thread(target=send, args=(i,)) for i in range(2)]
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            with lock:
                for answer in answers:
                    if answer.status_code != 200:
                        errors.append(f"{name}: {answer.status_code} {answer.text}")
                    else:
                        body = answer.json()
                        acked.append((name, battle, body["vote_id"], body["created"]))

    threads = [threading.Thread(target=annotator, args=(name, password, one if i % 2 else two))
               for i, (name, _, password) in enumerate(ANNOTATORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope(one.engine) as session:
        stored = session.execute(sa.select(Vote.id, Vote.annotator_id, Vote.battle_id)).all()
    expected = {(ids[name], battle) for name, battle, _, _ in acked}
    assert len(expected) == len(ANNOTATORS) * ROUNDS  # every round of every annotator acknowledged
    assert sorted((a, b) for _, a, b in stored) == sorted(expected)  # 0 lost, 0 doubled
    assert {vote_id for _, _, vote_id, _ in acked} == {vote_id for vote_id, _, _ in stored}
    assert sum(created for *_, created in acked) == len(expected)  # one of each pair stored it
