"""Hand-made HTTP attacks on the Arena through Gradio's raw API, against a real ``lwz serve --auth``.

Every call is a POST to ``/gradio_api/queue/join`` with an ``fn_index`` and a session hash,
read back from ``/gradio_api/queue/data``, signed in through ``POST /login`` — what a script
(not the page) can send. A vote is also sent the way the page sends it, as one POST outside
the queue (``/gradio_api/run/predict``, see :func:`direct_call`); every vote test runs both
ways. All refusals must come from the server, and no response before a vote may carry a
model's name.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from storage.models import Assignment, Battle, Vote
from tests.helpers import user_id
from tests.live_app import gradio_config, http_session, raw_call, start_live_app
from arena.seed import seed_pool

pytestmark = pytest.mark.slow

MODELS = ["zorblax-writer-7", "quillon-prime-3"]
USERS = [("ann", "annotator", "pw-ann"), ("bob", "annotator", "pw-bob"), ("wri", "writer", "pw-wri")]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with start_live_app(tmp_path_factory.mktemp("arena_http"), auth=True, users=USERS) as live:
        seed_pool(live.engine, models=MODELS, prompts=10, words=40, seed=3)
        yield live


@pytest.fixture(scope="module")
def clients(app):
    made = {name: http_session(app, name, password) for name, _, password in USERS}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def fns(clients):
    config = gradio_config(clients["ann"])
    return {dep["api_name"]: dep.get("id", i) for i, dep in enumerate(config["dependencies"]) if dep.get("api_name")}


def direct_call(client, fn_index: int, data: list, *, session_hash: str | None = None) -> list[dict]:
    """Run an event as the page runs a ``queue=False`` one: one POST to ``/gradio_api/run/predict``,
    answered with the outputs. Returned in :func:`raw_call`'s shape (one ``process_completed``
    message); a refusal at the door (401/403 without the handler's ``error``) raises ``httpx.HTTPStatusError``
    as there. A handler's refusal of the caller's role is a 403 with its ``error``: a failed completion."""
    response = client.post("/gradio_api/run/predict", json={
        "data": data, "fn_index": fn_index, "session_hash": session_hash or uuid.uuid4().hex[:11],
        "event_data": None, "trigger_id": None})
    if response.status_code in (401, 403) and "error" not in response.json():
        response.raise_for_status()
    body = response.json()
    ok = response.status_code == 200
    return [{"msg": "process_completed", "success": ok,
             "output": {"data": body["data"]} if ok else {"error": body.get("error")}}]


@pytest.fixture(params=["queue", "direct"])
def vote_call(request):
    """How a vote event is sent: through the queue (a script) or as one POST outside it (the page)."""
    return raw_call if request.param == "queue" else direct_call


def completed(messages: list[dict]) -> dict:
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done, messages
    return done[-1]


def refused(messages: list[dict], match: str) -> None:
    done = completed(messages)
    assert done["success"] is False, done
    assert match in json.dumps(done["output"]), done["output"]
    assert not any(name in json.dumps(messages) for name in MODELS)  # a refusal never reveals


def value(item):
    return item["value"] if isinstance(item, dict) and "value" in item else item


def load_battle(client, fns) -> tuple[int, list[dict]]:
    messages = raw_call(client, fns["arena_next"], [])
    done = completed(messages)
    assert done["success"], done
    return int(value(done["output"]["data"][1])), messages


def vote_data(label: str, battle: int, reason: str = "") -> list:
    return [label, battle, None, None, None, None, reason, ""]  # the last: the page's reading report


def stored_votes(app, **where) -> list[Vote]:
    with session_scope(app.engine) as session:
        query = sa.select(Vote)
        for key, val in where.items():
            query = query.where(getattr(Vote, key) == val)
        return list(session.exec(query).scalars())


def test_signed_out_visitor_cannot_join_the_queue(app, fns):
    import httpx

    with httpx.Client(base_url=app.url, timeout=30) as anon:
        response = anon.post("/gradio_api/queue/join", json={
            "data": [], "fn_index": fns["arena_next"], "session_hash": uuid.uuid4().hex[:11]})
        assert response.status_code in (401, 403)


def test_no_model_name_before_the_vote_then_reveal(app, clients, fns, vote_call):
    ann = clients["ann"]
    battle, messages = load_battle(ann, fns)
    raw = json.dumps(messages)
    assert battle > 0 and not any(name in raw for name in MODELS)
    refused(raw_call(ann, fns["arena_reveal"], [battle]), "vote first")
    done = completed(vote_call(ann, fns["arena_vote"], vote_data("A is better", battle)))
    assert done["success"] and all(name in json.dumps(done["output"]) for name in MODELS)  # stored, then revealed
    assert stored_votes(app, battle_id=battle, annotator_id=user_id(app, "ann"))
    shown = completed(raw_call(ann, fns["arena_reveal"], [battle]))
    assert shown["success"] and all(name in json.dumps(shown) for name in MODELS)


def test_vote_on_unassigned_battle_is_refused(app, clients, fns, vote_call):
    bob_id = user_id(app, "bob")
    with session_scope(app.engine) as session:
        given = set(session.exec(sa.select(Assignment.battle_id).where(Assignment.annotator_id == bob_id)).scalars())
        battle = next(b for b in session.exec(sa.select(Battle.id)).scalars() if b not in given)
    refused(vote_call(clients["bob"], fns["arena_vote"], vote_data("Tie", battle)), "not assigned")
    assert stored_votes(app, battle_id=battle, annotator_id=bob_id) == []


def test_second_vote_returns_the_first(app, clients, fns, vote_call):
    bob = clients["bob"]
    battle, _ = load_battle(bob, fns)
    first = completed(vote_call(bob, fns["arena_vote"], vote_data("B is better", battle)))
    assert first["success"]
    hidden_vote = fns["vote_1"]  # the "B is better" button's own event, hidden from the API page
    again = completed(vote_call(bob, hidden_vote, vote_data("Both bad", battle)))
    assert again["success"] and "first vote stands" in json.dumps(again["output"])
    assert [v.winner for v in stored_votes(app, battle_id=battle, annotator_id=user_id(app, "bob"))] == ["right"]


def test_vote_as_another_user_is_refused(app, clients, fns, vote_call):
    ann, bob = clients["ann"], clients["bob"]
    battle, _ = load_battle(ann, fns)
    session_of_ann = uuid.uuid4().hex[:11]
    raw_call(ann, fns["arena_next"], [], session_hash=session_of_ann)
    # Bob replays Ann's battle id under Ann's session hash: the page is Ann's, refused at the door;
    # under a page of his own, identity is the cookie, not the hash, and the battle is not his.
    with pytest.raises(httpx.HTTPStatusError, match="403"):
        vote_call(bob, fns["arena_vote"], vote_data("Tie", battle), session_hash=session_of_ann)
    refused(vote_call(bob, fns["arena_vote"], vote_data("Tie", battle)), "not assigned")
    refused(raw_call(bob, fns["arena_reveal"], [battle]), "vote first")
    assert stored_votes(app, battle_id=battle, annotator_id=user_id(app, "bob")) == []


def test_hidden_events_by_fn_index_check_the_role(app, clients, fns, vote_call):
    writer = clients["wri"]
    for name in ("arena_next", "vote_2", "arena_reveal", "arena_skip"):
        data = [] if name == "arena_next" else vote_data("Tie", 1) if name.startswith("vote") else [1]
        refused((vote_call if name.startswith("vote") else raw_call)(writer, fns[name], data), "may not vote")


def test_bad_input_is_refused_with_the_reason(app, clients, fns, vote_call):
    ann = clients["ann"]
    battle, _ = load_battle(ann, fns)
    refused(vote_call(ann, fns["arena_vote"], vote_data("Z is best", battle)), "invalid choice")
    refused(vote_call(ann, fns["arena_vote"], vote_data("Tie", battle, "x" * 5001)), "the limit is 5,000")
    refused(vote_call(ann, fns["arena_vote"], vote_data("Tie", -4)), "no battle loaded")
    assert stored_votes(app, battle_id=battle, winner="tie") == []
