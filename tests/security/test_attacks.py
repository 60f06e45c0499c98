"""The attack suite: one function per attack, as raw HTTP calls against a real ``lwz serve --auth``.

Every test here is something an attacker (or a curious user with a script) tried against the
app. The next hole found becomes a new function in this file, not a new file.

Structure, for whoever adds an attack:

- ``target`` (module-wide) is ONE live ``lwz serve --auth`` on a fresh SQLite database, with a
  user of every role (:data:`USERS`: name -> (role, password)) and a small arena pool seeded
  with :data:`MODELS` (hand-made texts; no model runs).
- ``as_user(target, name)`` is an ``httpx.Client`` signed in through ``POST /login``;
  ``tab_vote(client, battle)`` votes as the Arena tab does (one POST outside Gradio's queue);
  ``anonymous(target)`` one that is not. ``assign(target, name)`` gives that user an open
  battle (as Next battle does) and returns its id. The helpers of ``tests/live_app.py``
  (``raw_call``, ``gradio_config``, ``fn_index_of``) run Gradio events by hand.
- Sign-in is throttled per name and per client address on this one server. A test that makes
  sign-ins fail must send ``X-Forwarded-For: <an address of its own>`` (the server trusts that
  header from 127.0.0.1, as behind a local proxy) and, if it locks a name, use a name no other
  test signs in with; otherwise it would lock the other tests out.
- Assert what the attacker gets back (status, body) and what the database holds afterwards.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from arena.rules import ArenaSettings
from arena.seed import seed_pool
from arena.service import next_battle
from storage.engine import session_scope
from storage.models import Vote
from storage.users import get_user
from tests.helpers import ScriptedOpenAIServer, user_id
from tests.live_app import fn_index_of, gradio_config, http_session, raw_call, start_live_app

pytestmark = pytest.mark.slow

MODELS = ["zorblax-writer-7", "quillon-prime-3"]
USERS = {
    "wendy": ("writer", "pw-wendy"),
    "ann": ("annotator", "pw-ann"),
    "amy": ("annotator", "pw-amy"),
    "rita": ("researcher", "pw-rita"),
    "adam": ("admin", "pw-adam"),
    "locked": ("annotator", "pw-locked"),  # the throttle tests lock this name; nobody else signs in with it
    "bea": ("annotator", "pw-bea"),  # votes through the tab's POST outside the queue
    "barred": ("annotator", "pw-barred"),  # banned by an admin
}
VOTE = "/api/arena/vote"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    users = [(name, role, password) for name, (role, password) in USERS.items()]
    with start_live_app(tmp_path_factory.mktemp("attacks"), auth=True, users=users) as live:
        seed_pool(live.engine, models=MODELS, prompts=12, words=300, seed=5)
        yield live


def as_user(target, name: str, *, address: str | None = None):
    """A client signed in as ``name`` (optionally from another client address)."""
    client = http_session(target)
    if address:
        client.headers["X-Forwarded-For"] = address
    response = client.post("/login", data={"username": name, "password": USERS[name][1]})
    assert response.status_code == 200, response.text
    return client


def anonymous(target, *, address: str | None = None):
    client = http_session(target)
    if address:
        client.headers["X-Forwarded-For"] = address
    return client


def assign(target, name: str) -> int:
    """Give ``name`` an open battle, exactly as Next battle does; returns its id."""
    shown = next_battle(target.engine, annotator_id=user_id(target, name), settings=ArenaSettings())
    return shown["battle"]["battle_id"]


def votes_of(target, name: str, battle_id: int) -> int:
    with session_scope(target.engine) as session:
        return session.execute(sa.select(sa.func.count()).select_from(Vote).where(
            Vote.annotator_id == user_id(target, name), Vote.battle_id == battle_id)).scalar_one()


# --- sign-in ---------------------------------------------------------------------------------

def test_ten_wrong_passwords_for_a_name_lock_it_even_with_the_right_one(target):
    for i in range(10):  # from ten addresses: it is the name's count that trips
        response = anonymous(target, address=f"10.1.0.{i}").post(
            "/login", data={"username": "locked", "password": f"guess-{i}"})
        assert response.status_code == 400
    refused = anonymous(target, address="10.1.0.99").post(
        "/login", data={"username": "locked", "password": USERS["locked"][1]})
    assert refused.status_code == 429
    assert 290 <= int(refused.headers["Retry-After"]) <= 300
    assert "access-token" not in refused.headers.get("set-cookie", "")


def test_ten_failures_from_one_address_lock_that_address_for_every_name(target):
    for i in range(10):
        response = anonymous(target, address="10.2.0.1").post(
            "/login", data={"username": f"no-such-user-{i}", "password": "x"})
        assert response.status_code == 400
    refused = anonymous(target, address="10.2.0.1").post(
        "/login", data={"username": "rita", "password": USERS["rita"][1]})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    elsewhere = anonymous(target, address="10.2.0.2").post(
        "/login", data={"username": "rita", "password": USERS["rita"][1]})
    assert elsewhere.status_code == 200


def test_failed_and_throttled_sign_ins_are_logged_with_name_and_address(target):
    for i in range(11):
        anonymous(target, address="10.3.0.7").post("/login", data={"username": f"probe-{i}", "password": "x"})
    log = target.log()
    assert "sign-in failed: name='probe-0' address=10.3.0.7" in log
    assert "sign-in throttled: name='probe-10' address=10.3.0.7" in log


# --- sessions --------------------------------------------------------------------------------

def test_a_forged_session_cookie_gets_the_sign_in_page(target):
    client = anonymous(target)
    client.cookies.set("access-token-unsecure-lwz", "forged-token")
    page = client.get("/")
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    assert client.get("/config").status_code == 401


def test_a_signed_out_session_is_refused_everywhere(target):
    client = as_user(target, "amy")
    stolen = dict(client.cookies)
    assert client.get("/config").status_code == 200
    client.post("/logout")
    replay = anonymous(target)
    for key, value in stolen.items():
        replay.cookies.set(key, value)
    assert replay.get("/config").status_code == 401
    assert '"auth_required":true' in replay.get("/").text.replace(" ", "")
    assert replay.post(VOTE, json={"battle_id": 1, "winner": "left"}).status_code == 401


def test_the_session_token_is_not_handed_to_scripts(target):
    client = as_user(target, "amy")
    token = client.cookies.get("access-token-unsecure-lwz")
    response = client.get("/gradio_api/token")
    assert response.status_code == 404 and token not in response.text


# --- another user's page ----------------------------------------------------------------------

def test_another_users_event_stream_is_refused(target):
    owner, intruder = as_user(target, "ann"), as_user(target, "rita")
    page = uuid.uuid4().hex[:11]
    fn = fn_index_of(gradio_config(owner), "arena_next")
    done = raw_call(owner, fn, [], session_hash=page)
    assert done[-1]["msg"] == "process_completed"
    stream = intruder.get("/gradio_api/queue/data", params={"session_hash": page})
    assert stream.status_code == 403
    joined = intruder.post("/gradio_api/queue/join", json={
        "data": [], "fn_index": fn, "session_hash": page, "event_data": None, "trigger_id": None})
    assert joined.status_code == 403
    assert intruder.get(f"/gradio_api/heartbeat/{page}").status_code == 403
    assert anonymous(target).get("/gradio_api/queue/data", params={"session_hash": page}).status_code == 401
    assert raw_call(owner, fn, [], session_hash=page)[-1]["msg"] == "process_completed"


# --- the fast vote route ---------------------------------------------------------------------

def test_vote_route_without_a_session_is_refused(target):
    assert anonymous(target).post(VOTE, json={"battle_id": 1, "winner": "left"}).status_code == 401


def test_vote_route_refuses_a_role_that_may_not_vote(target):
    response = as_user(target, "wendy").post(VOTE, json={"battle_id": 1, "winner": "left"})
    assert response.status_code == 403 and "writer may not vote" in response.json()["error"]


def test_vote_route_refuses_another_users_battle(target):
    battle = assign(target, "ann")
    response = as_user(target, "amy").post(VOTE, json={"battle_id": battle, "winner": "left"})
    assert response.status_code == 400 and "not assigned to you" in response.json()["error"]
    assert "model" not in response.text and MODELS[0] not in response.text
    assert votes_of(target, "amy", battle) == 0


def test_vote_route_stores_once_flags_too_fast_and_reveals_after(target):
    client = as_user(target, "adam")
    battle = assign(target, "adam")
    first = client.post(VOTE, json={"battle_id": battle, "winner": "tie", "criteria": {"style": "left"}})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] is True and body["flagged"] is True  # voted at once on 600 words
    assert {body["reveal"]["left"]["model"], body["reveal"]["right"]["model"]} <= set(MODELS)
    again = client.post(VOTE, json={"battle_id": battle, "winner": "left"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["winner"] == "tie" and again.json()["vote_id"] == body["vote_id"]
    assert votes_of(target, "adam", battle) == 1


@pytest.mark.parametrize("payload, fragment", [
    ({"battle_id": "1; DROP TABLE votes", "winner": "left"}, "battle_id must be"),
    ({"battle_id": 2**64, "winner": "left"}, "battle_id must be"),
    ({"battle_id": True, "winner": "left"}, "battle_id must be"),
    ({"battle_id": 1, "winner": ["left"]}, "winner must be"),
    ({"battle_id": 1, "winner": "A"}, "invalid choice"),
    ({"battle_id": 1, "winner": "left", "criteria": ["style"]}, "criteria must"),
    ({"battle_id": 1, "winner": "left", "reason": {"a": 1}}, "reason must be text"),
    ({"battle_id": 1, "winner": "left", "reason": "bad\x00byte"}, "NUL"),
    ([1, "left"], "JSON object"),
])
def test_vote_route_refuses_malformed_votes_in_one_line(target, payload, fragment):
    response = as_user(target, "rita").post(VOTE, json=payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in error and "\n" not in error and "Traceback" not in error and "SELECT" not in error


def test_vote_route_caps_the_reason(target):
    client = as_user(target, "rita")
    battle = assign(target, "rita")
    response = client.post(VOTE, json={"battle_id": battle, "winner": "left", "reason": "x" * 5001})
    assert response.status_code == 400 and "limit is 5,000" in response.json()["error"]
    assert votes_of(target, "rita", battle) == 0


def test_vote_route_refuses_a_cross_site_form_post(target):
    client = as_user(target, "ann")
    response = client.post(VOTE, content="battle_id=1&winner=left",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_vote_route_refuses_other_methods_and_oversized_bodies(target):
    client = as_user(target, "ann")
    assert client.get(VOTE).status_code == 405
    response = client.post(VOTE, content=b'{"battle_id": 1, "winner": "left", "reason": "' + b"x" * 70_000 + b'"}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["error"]


# --- the Arena tab's vote: one POST outside Gradio's queue ----------------------------------------

RUN = "/gradio_api/run/predict"


def tab_vote(client, battle, label: str = "A is better", reason: str = "", *, session_hash: str | None = None,
             fn: int | None = None):
    """A vote as the Arena tab sends it: one POST outside the queue, answered with the outputs."""
    if fn is None:
        fn = fn_index_of(gradio_config(client), "arena_vote")
    return client.post(RUN, json={"data": [label, battle, None, None, None, None, reason, ""], "fn_index": fn,
                                  "session_hash": session_hash or uuid.uuid4().hex[:11], "event_data": None,
                                  "trigger_id": None})


def test_tab_vote_without_a_session_is_refused(target):
    fn = fn_index_of(gradio_config(as_user(target, "ann")), "arena_vote")
    response = tab_vote(anonymous(target), 1, fn=fn)
    assert response.status_code == 401 and not any(m in response.text for m in MODELS)


def test_tab_vote_on_another_users_page_or_battle_is_refused(target):
    owner, intruder = as_user(target, "ann"), as_user(target, "amy")
    page = uuid.uuid4().hex[:11]
    shown = raw_call(owner, fn_index_of(gradio_config(owner), "arena_next"), [], session_hash=page)[-1]
    battle = shown["output"]["data"][1]
    assert tab_vote(intruder, battle, session_hash=page).status_code == 403  # ann's page
    response = tab_vote(intruder, battle)  # a page of amy's own: the battle is still ann's
    assert response.status_code == 500 and "not assigned to you" in response.json()["error"]
    assert not any(m in response.text for m in MODELS)
    assert votes_of(target, "amy", battle) == 0


def test_tab_vote_stores_once_flags_too_fast_and_reveals_in_its_answer(target):
    client = as_user(target, "bea")
    battle = assign(target, "bea")
    first = tab_vote(client, battle, "A is better")
    assert first.status_code == 200, first.text
    status, _counts, _row, reveal = first.json()["data"]
    assert status.startswith("Vote stored.") and "flagged" in status  # voted at once on 600 words
    assert all(m in reveal for m in MODELS)
    again = tab_vote(client, battle, "B is better")
    assert again.status_code == 200 and "first vote stands" in again.json()["data"][0]
    assert votes_of(target, "bea", battle) == 1
    with session_scope(target.engine) as s:
        vote = s.execute(sa.select(Vote).where(Vote.battle_id == battle, Vote.annotator_id == user_id(target, "bea"))
                         ).scalars().one()
        assert vote.winner == "left" and vote.flags[0] == "too_fast"


def test_tab_vote_caps_the_reason_and_refuses_bad_values_in_one_line(target):
    client = as_user(target, "bea")
    battle = assign(target, "bea")
    for reason, label, fragment in (("x" * 5001, "Tie", "limit is 5,000"), ("ok\x00", "Tie", "NUL"),
                                    ("", "C is better", "invalid choice")):
        response = tab_vote(client, battle, label, reason)
        error = response.json()["error"]
        assert response.status_code == 500 and fragment in error and "\n" not in error and "Traceback" not in error
    assert votes_of(target, "bea", battle) == 0


def test_tab_vote_refuses_a_role_that_may_not_vote(target):
    response = tab_vote(as_user(target, "wendy"), 1)
    assert response.status_code == 403 and "writer may not vote" in response.json()["error"]


def test_a_banned_annotators_votes_are_stored_but_count_nowhere(target):
    """A ban takes votes out of ratings and exports (see evaluation.hygiene); both vote paths still
    store them, with every other check, so lifting the ban brings them back."""
    from evaluation.hygiene import ban
    from storage.counted_votes import CountedVotes
    from storage.votes import votes_table

    with session_scope(target.engine) as s:
        ban(s, name="barred", reason="rigging", by="adam")
    client = as_user(target, "barred")
    by_route = assign(target, "barred")
    response = client.post(VOTE, json={"battle_id": by_route, "winner": "left"})
    assert response.status_code == 200 and response.json()["created"] is True
    assert client.post(VOTE, json={"battle_id": by_route, "winner": "right"}).json()["created"] is False
    by_tab = assign(target, "barred")
    assert tab_vote(client, by_tab, "Tie").status_code == 200
    mine = {by_route, by_tab}
    with session_scope(target.engine) as s:
        counted = set(votes_table(s, counted=CountedVotes(include_flagged_votes=True))["battle_id"]) & mine
        kept = votes_table(s, counted=CountedVotes(include_flagged_votes=True, include_banned=True))
    assert counted == set()
    assert set(kept[kept["annotator"] == "barred"]["battle_id"]) == mine


# --- integrity: what a writer types, blind battles, bad values --------------------------------

OVERLAY = ('<div style="position:fixed;inset:0;z-index:9999">covered</div><img src=http://evil.invalid/p.png>'
           '<form action=http://evil.invalid/f><input name=x></form>')


def payload_battle(target, name: str) -> int:
    """A battle whose request, plans and answers carry :data:`OVERLAY`, given to ``name`` (their open battle)."""
    from storage.arena import create_battle_with_extra
    from storage.catalog import get_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation, set_in_pool
    from storage.votes import assign_battle

    with session_scope(target.engine) as s:
        prompt, _ = get_or_add_prompt(s, text=f"Write about {uuid.uuid4().hex}. {OVERLAY}")
        ids = []
        for model in MODELS:
            g = create_generation(s, prompt_id=prompt.id, model_id=get_model(s, name=model).id, params={})
            finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop",
                              think="Plan " + OVERLAY, answer="Text " + OVERLAY, answer_words=3)
            set_in_pool(s, generation_id=g.id)
            ids.append(g.id)
        battle = create_battle_with_extra(s, prompt_id=prompt.id, left_generation_id=ids[0],
                                          right_generation_id=ids[1], mode="pool", extra={})
        assign_battle(s, battle_id=battle.id, annotator_id=get_user(s, name=name).id)
        return battle.id


def test_a_writers_html_reaches_the_annotator_as_text(target):
    battle = payload_battle(target, "amy")
    client = as_user(target, "amy")
    shown = raw_call(client, fn_index_of(gradio_config(client), "arena_next"), [])
    body = str(shown)
    assert shown[-1].get("success") is True and shown[-1]["output"]["data"][1] == battle
    assert "covered" in body  # the texts were sent ...
    for markup in ('<div style="position:fixed', "<img src=http://evil", "<form action=", "<input name=x"):
        assert markup not in body  # ... but never as markup


def test_an_open_battle_stays_blind_in_open_writing_and_the_data_tab(target):
    from storage.models import Battle

    battle = assign(target, "rita")
    with session_scope(target.engine) as s:
        row = s.get(Battle, battle)
        blind = [row.left_generation_id, row.right_generation_id]
    client = as_user(target, "rita")
    config = gradio_config(client)
    opened = str(raw_call(client, fn_index_of(config, "open_writing"), [blind[0]]))
    assert "not voted on yet" in opened and not any(m in opened for m in MODELS)
    table = raw_call(client, fn_index_of(config, "data_table"), ["generations"])[-1]["output"]["data"][1]
    columns = table["headers"]
    rows = {r[columns.index("id")]: r[columns.index("model_id")] for r in table["data"]}
    assert not set(blind) & set(rows) and rows.get("hidden until you vote") == "hidden until you vote"
    assert any(isinstance(v, int) for g, v in rows.items() if g not in blind)


@pytest.mark.parametrize("battle, reason, fragment", [
    (None, "fine\x00then", "NUL"),
    (2**70, "", "there is no battle #"),
    ("1e999", "", "not a battle number"),
])
def test_bad_values_in_an_arena_vote_event_are_one_line(target, battle, reason, fragment):
    client = as_user(target, "ann")
    battle = assign(target, "ann") if battle is None else battle
    config = gradio_config(client)
    done = raw_call(client, fn_index_of(config, "arena_vote"), ["A is better", battle, None, None, None, None,
                                                                  reason, ""])[-1]
    assert done.get("success") is False
    error = str(done["output"].get("error"))
    assert fragment in error and "\n" not in error and "SELECT" not in error and "Traceback" not in error


def test_skipping_someone_elses_battle_is_refused(target):
    theirs = payload_battle(target, "ann")  # a fresh battle given to ann alone
    client = as_user(target, "amy")
    done = raw_call(client, fn_index_of(gradio_config(client), "arena_skip"), [theirs])[-1]
    assert done.get("success") is False and "nothing was skipped" in str(done["output"].get("error"))
    with session_scope(target.engine) as s:
        from storage.votes import get_assignment

        assert get_assignment(s, battle_id=theirs, annotator_id=user_id(target, "ann")).skipped is False


def test_a_download_is_served_to_its_owner_only(target):
    from storage.catalog import get_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation

    secret = f"Wendy's private draft {uuid.uuid4().hex}."
    with session_scope(target.engine) as s:
        prompt, _ = get_or_add_prompt(s, text=f"Wendy's request {uuid.uuid4().hex}")
        g = create_generation(s, prompt_id=prompt.id, model_id=get_model(s, name=MODELS[0]).id,
                              author_id=get_user(s, name="wendy").id, params={})
        finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop", answer=secret,
                          answer_words=4)
        gid = g.id
    wendy = as_user(target, "wendy")
    opened = raw_call(wendy, fn_index_of(gradio_config(wendy), "open_writing"), [gid])[-1]["output"]["data"]
    path = next(v["path"] for v in opened if isinstance(v, dict) and str(v.get("path", "")).endswith(".txt"))
    url = f"/gradio_api/file={path}"
    assert wendy.get(url).text == secret + "\n"
    for other in (as_user(target, "rita"), as_user(target, "adam"), anonymous(target)):
        response = other.get(url)
        assert response.status_code in (401, 403) and secret not in response.text, (response.status_code, response.text[:200])
    assert as_user(target, "rita").get(url.replace("/gradio_api/file=", "/gradio_api/file/")).status_code in (401, 403)


# --- issue 25, second pass: blind battles, instant votes, private requests, inert names, stalls,
# --- interrupted rows and an opaque pool (one block; each function fails on the code before it) ---

def test_a_backend_that_never_sends_headers_is_stopped_by_the_stall_limit(sqlite_engine, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from generation import stall
    from generation.request import GenerationRequest
    from writing.store import generate_to_row
    from storage.catalog import add_model

    server = ScriptedOpenAIServer(silent=True, model="fake", max_model_len=4096)  # accepts, never answers
    monkeypatch.setenv(stall.ENV_VAR, "2")
    with session_scope(sqlite_engine) as s:
        add_model(s, name="silent", backend="openai", base_url=server.base_url, model_id="fake", template="direct")
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        running = pool.submit(generate_to_row, sqlite_engine, model="silent",
                              request=GenerationRequest("Write about a silent harbour.", max_tokens=30))
        gen = running.result(timeout=120)  # before: no end until the client's 300 s read timeout
    finally:
        server.stop()
        pool.shutdown(wait=False)
    assert gen.status == "failed" and "stall limit" in gen.error


def _fresh_battles(target, count: int, *, words: int = 300) -> None:
    """``count`` new pool battles between :data:`MODELS`, each on its own new request."""
    from storage.arena import create_battle_with_extra
    from storage.catalog import get_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation, set_in_pool

    text = " ".join(["word"] * words)
    with session_scope(target.engine) as s:
        for _ in range(count):
            prompt, _ = get_or_add_prompt(s, text=f"Write about {uuid.uuid4().hex}.", source="fresh-battles")
            ids = []
            for model in MODELS:
                g = create_generation(s, prompt_id=prompt.id, model_id=get_model(s, name=model).id, params={})
                finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop", answer=text,
                                  answer_words=words)
                set_in_pool(s, generation_id=g.id)
                ids.append(g.id)
            create_battle_with_extra(s, prompt_id=prompt.id, left_generation_id=ids[0], right_generation_id=ids[1])


def test_instant_votes_are_all_flagged_and_lwz_annotators_names_the_account(target, capsys):
    """A fresh account casts 25 votes at once, each claiming nothing was read (so no reading speed
    applies), from the address a second account also signs in from."""
    from lwz_cli.main import main
    from storage.users import add_user

    with session_scope(target.engine) as s:
        for name in ("sprinter", "twin"):
            add_user(s, name=name, role="annotator", password=f"pw-{name}")
    _fresh_battles(target, 26)
    clients = {}
    for name in ("sprinter", "twin"):
        clients[name] = anonymous(target, address="10.25.4.4")
        assert clients[name].post("/login", data={"username": name, "password": f"pw-{name}"}).status_code == 200
    instant = {"read_left": 0, "read_right": 0, "seen_left": 0, "seen_right": 0, "active_seconds": 0}
    for _ in range(25):
        battle = assign(target, "sprinter")
        response = clients["sprinter"].post(VOTE, json={"battle_id": battle, "winner": "left", "reading": instant})
        assert response.status_code == 200, response.text
    battle = assign(target, "twin")
    assert clients["twin"].post(VOTE, json={"battle_id": battle, "winner": "right"}).status_code == 200
    with session_scope(target.engine) as s:
        flags = s.execute(sa.select(Vote.flags).where(Vote.annotator_id == user_id(target, "sprinter"))).scalars().all()
    assert len(flags) == 25 and all("too_fast" in f and "under_floor" in f for f in flags), flags
    capsys.readouterr()
    assert main(["--db", target.db_url, "annotators", "--json"]) == 0
    import json

    rows = {r["annotator"]: r for r in json.loads(capsys.readouterr().out)["annotators"]}
    sprinter = " ".join(rows["sprinter"]["flags"])
    assert "votes instantly" in sprinter and "twin" in sprinter, rows["sprinter"]


def test_a_writers_private_request_never_enters_a_fill_of_every_prompt(sqlite_engine, monkeypatch, tmp_path):
    """Wendy types a request in the Write path (the real service, against a server that then goes
    silent); ``lwz battles fill --all`` must plan answers for the imported prompts only, and the
    line printed after registration is bounded."""
    from arena.fill import FillOptions, plan_jobs
    from generation import stall
    from generation.request import GenerationRequest
    from writing.store import generate_to_row
    from lwz_cli.train import arena_fill_advice
    from storage.catalog import add_model, import_prompts
    from storage.users import add_user

    server = ScriptedOpenAIServer(silent=True, model="fake", max_model_len=4096)  # accepts, never answers
    monkeypatch.setenv(stall.ENV_VAR, "2")
    prompts = tmp_path / "arena.jsonl"
    prompts.write_text('{"prompt": "Write about the sea.", "length": 400}\n', encoding="utf-8")
    with session_scope(sqlite_engine) as s:
        for name in MODELS:
            add_model(s, name=name, backend="local")
        add_model(s, name="silent", backend="openai", base_url=server.base_url, model_id="fake", template="direct")
        wendy = add_user(s, name="wendy", role="writer").id
        import_prompts(s, path=prompts)
    secret = f"My private diary entry {uuid.uuid4().hex}: write it up as a letter."
    try:
        typed = generate_to_row(sqlite_engine, model="silent", author_id=wendy,
                                request=GenerationRequest(secret, max_tokens=30))
    finally:
        server.stop()
    jobs, _ = plan_jobs(sqlite_engine, options=FillOptions(models=MODELS, all_prompts=True))
    assert jobs and typed.prompt_id not in {job.prompt_id for job in jobs}
    assert all(secret not in job.text for job in jobs)
    advice = arena_fill_advice(sqlite_engine, MODELS[1], MODELS[0], db=None)
    assert "--limit 8" in advice and "minutes" in advice and "2 answers" in advice, advice


def test_a_held_battle_reveals_nothing_of_its_reveal_through_any_route(target):
    """Rhea (a researcher, who may read every table) holds a battle open. Everything each route
    answers her is compared against what the vote would reveal: the model names, the template and
    api in ``params``, the seed, the timings, the tokenizer's prompt count, and the held ids."""
    import json

    from storage.arena import create_battle_with_extra
    from storage.catalog import get_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation, set_in_pool
    from storage.models import Battle, ModelEntry
    from storage.overview import OVERVIEW_TABLES
    from storage.users import add_user
    from storage.votes import assign_battle

    reveal = {"template": "zqtemplate", "api": "zqapi", "seed": 918273645, "ttft": 4321.25, "duration": 87654.75,
              "prompt_tokens": 31337, "think": "zqthinkmarker"}
    with session_scope(target.engine) as s:
        rhea = add_user(s, name="rhea", role="researcher", password="pw-rhea").id
        prompt, _ = get_or_add_prompt(s, text=f"Write about {uuid.uuid4().hex}.", source="held-battle")
        held = []
        for model in MODELS:
            g = create_generation(s, prompt_id=prompt.id, model_id=get_model(s, name=model).id,
                                  params={"seed": reveal["seed"], "template": reveal["template"], "api": reveal["api"]})
            finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop", answer="A text.",
                              answer_words=2, think=reveal["think"], ttft_ms=reveal["ttft"],
                              duration_ms=reveal["duration"], prompt_tokens=reveal["prompt_tokens"])
            set_in_pool(s, generation_id=g.id)
            held.append(g.id)
        battle = create_battle_with_extra(s, prompt_id=prompt.id, left_generation_id=held[0],
                                          right_generation_id=held[1], extra={"seed": 5, "names_found": MODELS})
        assign_battle(s, battle_id=battle.id, annotator_id=rhea)
        battle_id = battle.id
        model_ids = {m.id for m in s.execute(sa.select(ModelEntry).where(ModelEntry.name.in_(MODELS))).scalars()}
    client = anonymous(target)
    assert client.post("/login", data={"username": "rhea", "password": "pw-rhea"}).status_code == 200
    config = gradio_config(client)
    answers = {}
    for table in OVERVIEW_TABLES:
        done = raw_call(client, fn_index_of(config, "data_table"), [table])[-1]
        assert done.get("success") is True, done
        answers[f"data tab: {table}"] = done["output"]["data"][1]
    for gid in held:
        answers[f"open writing #{gid}"] = raw_call(client, fn_index_of(config, "open_writing"), [gid])[-1]
    answers["my writing"] = raw_call(client, fn_index_of(config, "my_writing"), [])[-1]
    answers["arena next (tab)"] = raw_call(client, fn_index_of(config, "arena_next"), [])[-1]
    answers["arena next (JSON)"] = client.post("/api/arena/next", json={}).json()
    shown = {route: json.dumps(answer) for route, answer in answers.items()}
    assert str(battle_id) in shown["arena next (JSON)"]  # the battle she holds is the one asked about
    markers = [reveal["template"], reveal["api"], str(reveal["seed"]), "4321.25", "87654.75", str(reveal["prompt_tokens"])]
    for route, text in shown.items():
        leaked = [m for m in markers if m in text]
        if "arena next" not in route:  # the battle view shows the plans: they are what is judged
            leaked += [reveal["think"]] if reveal["think"] in text else []
        if route != "data tab: models":
            leaked += [m for m in MODELS if m in text]
        assert not leaked, f"{route} reveals {leaked}"
    generations = answers["data tab: generations"]
    columns = generations["headers"]
    ids = [row[columns.index("id")] for row in generations["data"]]
    assert not set(held) & set(ids)
    held_rows = [row for row in generations["data"] if row[columns.index("id")] == "hidden until you vote"]
    assert len(held_rows) == 2 and not {row[columns.index("model_id")] for row in held_rows} & model_ids
    battles = answers["data tab: battles"]
    row = next(r for r in battles["data"] if r[battles["headers"].index("id")] == battle_id)
    assert not {row[battles["headers"].index("left_generation_id")], row[battles["headers"].index("right_generation_id")]} & set(held)


def test_a_model_name_and_bare_urls_render_no_image_and_no_link(sqlite_engine):
    """A model registered as ``<img src=…>[n](http://…)`` is named in the Leaderboard's "not rated"
    note, for every role; bare ``http://…``, ``www.…`` and ``x@host`` in any stored text would
    become live links in the GFM renderer. What reaches a Markdown pane must hold none of them."""
    import re

    from storage.catalog import add_model
    from webapp.leaderboard_tab import leaderboard_view
    from webapp.rendering import safe_markdown

    name = "<img src=http://evil.invalid/p.png>[n](http://evil.invalid/n)"
    with session_scope(sqlite_engine) as s:
        add_model(s, name=name, backend="local")
    summary = leaderboard_view(sqlite_engine, bootstrap=10)["summary"]
    assert "not rated" in summary and "evil.invalid" in summary
    live = re.compile(r"<img|(?<!\\)\]\(|(?<!\\)://|www\.|(?<!\\)@evil", re.I)
    assert not live.search(summary), summary
    stored = "Read http://evil.invalid/a, ftp://evil.invalid/b, WWW.evil.invalid/c or mail me at x@evil.invalid."
    shown = safe_markdown(stored)
    assert not live.search(shown) and shown.replace("\\", "") == stored


def test_a_fill_that_forms_no_battle_says_why_and_each_role_is_told_what_it_can_do(sqlite_url, capsys, tmp_path):
    from arena.service import next_battle
    from lwz_cli.main import main
    from storage.catalog import add_model
    from storage.engine import make_engine, upgrade
    from storage.users import add_user

    engine = make_engine(sqlite_url)
    upgrade(engine)
    # every answer stops at the token limit (finish_reason length), as a small --max-tokens makes a real one do
    server = ScriptedOpenAIServer(lambda body: ["The tide ", "came in ", "slowly over ", "the sand "], model="fake",
                                  max_model_len=4096)
    base_url = server.base_url
    with session_scope(engine) as s:
        for name in MODELS:
            add_model(s, name=name, backend="openai", base_url=base_url, model_id="fake", template="direct")
        ann = add_user(s, name="ann", role="annotator").id
        rita = add_user(s, name="rita", role="researcher").id
    told = {who: next_battle(engine, annotator_id=uid, settings=ArenaSettings())["message"]
            for who, uid in (("annotator", ann), ("researcher", rita))}
    assert "lwz " not in told["annotator"] and "Write tab" not in told["annotator"], told
    assert "lwz battles fill" in told["researcher"]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Write about the tide.", "length": 300}\n', encoding="utf-8")
    capsys.readouterr()
    try:
        main(["--db", sqlite_url, "battles", "fill", "--prompts", str(prompts), "--models", ",".join(MODELS),
              "--max-tokens", "8"])
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert "formed 0 battles" in out
    assert "cut at --max-tokens 8, and cut texts cannot battle: raise --max-tokens" in out, out
    engine.dispose()


# --- cross-site requests, page binding by any Content-Type, inputs that answered 500, sign-in under load ---
# (issue 25 holes 1, 2, 6 and 10). A second origin is another port of the same host: same site, other origin.

import json as _json
import threading

OTHER_ORIGIN = "http://127.0.0.1:9"  # another port of the same host


def _generations(target) -> int:
    from storage.models import Generation

    with session_scope(target.engine) as s:
        return s.execute(sa.select(sa.func.count()).select_from(Generation)).scalar_one()


def _write_call(fn_request: str) -> dict:
    return {"data": [fn_request, 50, "zorblax-writer-7", 0.7, 0.95, "", None]}


def test_cross_site_posts_are_refused_and_store_nothing(target):
    victim = as_user(target, "rita")
    battle = assign(target, "rita")
    before = _generations(target)
    for headers in ({"Origin": OTHER_ORIGIN}, {"Referer": OTHER_ORIGIN + "/attack.html"}, {"Origin": "null"}):
        vote = victim.post("/gradio_api/run/arena_vote", headers=headers, json={
            "data": ["A is better", battle, None, None, None, None, "", ""], "session_hash": uuid.uuid4().hex[:11]})
        assert vote.status_code == 403 and not any(m in vote.text for m in MODELS), vote.text
        assert victim.post("/gradio_api/run/arena_next", headers=headers, json={"data": []}).status_code == 403
        assert victim.post("/gradio_api/call/write", headers=headers,
                           json=_write_call("Write a poem for the attacker.")).status_code == 403
        assert victim.post(VOTE, headers=headers, json={"battle_id": battle, "winner": "left"}).status_code == 403
        assert victim.post("/gradio_api/queue/join", headers=headers, json={
            "data": [], "fn_index": 0, "session_hash": uuid.uuid4().hex[:11]}).status_code == 403
        login = anonymous(target).post("/login", headers=headers, data={"username": "wendy", "password": "pw-wendy"})
        assert login.status_code == 403 and "access-token" not in login.headers.get("set-cookie", "")
        assert victim.post("/logout", headers=headers).status_code == 403
    assert victim.get("/logout").status_code == 405  # a plain link signs nobody out
    assert victim.get("/config").status_code == 200  # still signed in
    assert votes_of(target, "rita", battle) == 0 and _generations(target) == before
    # The app's own origin still works.
    own = victim.post(VOTE, headers={"Origin": target.url}, json={"battle_id": battle, "winner": "left"})
    assert own.status_code == 200 and own.json()["created"] is True


def test_gradio_cors_gives_no_other_origin_the_victims_answers(target):
    victim = as_user(target, "rita")
    preflight = victim.options("/gradio_api/run/arena_next", headers={
        "Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.headers.get("access-control-allow-origin") != OTHER_ORIGIN
    assert preflight.headers.get("access-control-allow-credentials") != "true"
    simple = victim.get("/config", headers={"Origin": OTHER_ORIGIN})
    assert simple.headers.get("access-control-allow-origin") is None
    assert simple.headers.get("access-control-allow-credentials") is None


@pytest.mark.parametrize("content_type", ["application/JSON", "application/json; charset=UTF-8", "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_another_users_page_is_refused_whatever_the_content_type(target, content_type):
    owner, intruder = as_user(target, "ann"), as_user(target, "amy")
    page = uuid.uuid4().hex[:11]
    fn = fn_index_of(gradio_config(owner), "arena_next")
    assert raw_call(owner, fn, [], session_hash=page)[-1]["msg"] == "process_completed"
    headers = {"Content-Type": content_type}
    bodies = {
        "/gradio_api/queue/join": {"data": [], "fn_index": fn, "session_hash": page, "event_data": None,
                                   "trigger_id": None},
        "/gradio_api/run/arena_next": {"data": [], "session_hash": page},
        "/gradio_api/call/arena_next": {"data": [], "session_hash": page},
        "/gradio_api/cancel": {"session_hash": page, "fn_index": fn, "event_id": "x"},
    }
    for path, body in bodies.items():
        response = intruder.post(path, content=_json.dumps(body).encode(), headers=headers)
        assert response.status_code in (400, 403), (path, response.status_code, response.text[:200])


def test_cancelling_another_users_generation_is_refused(target):
    owner, intruder = as_user(target, "wendy"), as_user(target, "rita")
    page = uuid.uuid4().hex[:11]
    fn = fn_index_of(gradio_config(owner), "write")
    joined = owner.post("/gradio_api/queue/join", json={
        "data": ["Write a long story about a lighthouse.", 500, "no-such-model", 0.7, 0.95, "", None],
        "fn_index": fn, "session_hash": page, "event_data": None, "trigger_id": None})
    assert joined.status_code == 200
    event = joined.json()["event_id"]
    cancel = intruder.post("/gradio_api/cancel", headers={"Content-Type": "application/JSON"},
                           content=_json.dumps({"session_hash": page, "fn_index": fn, "event_id": event}).encode())
    assert cancel.status_code == 403
    owner.post("/gradio_api/cancel", json={"session_hash": page, "fn_index": fn, "event_id": event})


NESTED = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("path", [VOTE, "/api/arena/next", "/gradio_api/run/arena_vote"])
def test_deeply_nested_json_is_a_one_line_400(target, path):
    client = as_user(target, "ann")
    response = client.post(path, content=NESTED[:2048], headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:200]
    error = response.text
    assert "nests deeper" in error and "\n" not in error and "Traceback" not in error and "Recursion" not in error


def test_a_lone_surrogate_is_refused_in_one_line_and_nothing_is_stored(target):
    client = as_user(target, "adam")
    battle = assign(target, "adam")
    before = _generations(target)
    raw = '{"battle_id": %d, "winner": "left", "reason": "x\\ud800y"}' % battle
    by_route = client.post(VOTE, content=raw.encode(), headers={"Content-Type": "application/json"})
    assert by_route.status_code == 400 and "lone surrogate" in by_route.json()["error"]
    tab = ('{"data": ["A is better", %d, null, null, null, null, "x\\ud800y", ""], "session_hash": "%s"}'
           % (battle, uuid.uuid4().hex[:11]))
    by_tab = client.post("/gradio_api/run/arena_vote", content=tab.encode(), headers={"Content-Type": "application/json"})
    assert by_tab.status_code == 400 and "lone surrogate" in by_tab.text and "\n" not in by_tab.text
    write = ('{"data": ["Write about x\\ud800y.", 50, "zorblax-writer-7", 0.7, 0.95, "", null]}')
    by_write = client.post("/gradio_api/call/write", content=write.encode(), headers={"Content-Type": "application/json"})
    assert by_write.status_code == 400 and "lone surrogate" in by_write.text
    assert votes_of(target, "adam", battle) == 0 and _generations(target) == before


def test_a_role_refusal_on_a_gradio_route_is_403(target):
    response = tab_vote(as_user(target, "wendy"), 1)
    assert response.status_code == 403 and "writer may not vote" in response.json()["error"]


def test_the_data_table_call_answers_with_timestamps(target):
    client = as_user(target, "rita")
    started = client.post("/gradio_api/call/data_table", json={"data": ["generations"]})
    assert started.status_code == 200, started.text
    answer = client.get(f"/gradio_api/call/data_table/{started.json()['event_id']}", timeout=60)
    assert "event: complete" in answer.text and "event: error" not in answer.text, answer.text[:400]


def test_both_session_cookies_are_secure_behind_tls(target):
    response = anonymous(target).post("/login", headers={"X-Forwarded-Proto": "https"},
                                      data={"username": "amy", "password": USERS["amy"][1]})
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2 and all("; secure" in c.lower() for c in cookies), cookies
    plain = anonymous(target).post("/login", data={"username": "amy", "password": USERS["amy"][1]})
    assert any("; secure" not in c.lower() for c in plain.headers.get_list("set-cookie"))  # plain HTTP here


def test_cross_site_attack_from_a_browser_is_refused(target, browser, tmp_path):
    """The attack of issue 25 (1) as a browser runs it: the victim signed in, a page on another port."""
    import http.server

    from tests.live_app import free_port

    victim_battle = assign(target, "ann")
    before = _generations(target)
    context = browser.new_context()
    page = context.new_page()
    page.goto(target.url + "/")
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill(USERS["ann"][1])
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("gradio-app .tab-container, gradio-app [role=tablist]", timeout=30_000)
    (tmp_path / "attack.html").write_text(f"""<!doctype html><body>
<form id="csrf" method="post" action="{target.url}/login" target="sink">
<input name="username" value="wendy"><input name="password" value="{USERS['wendy'][1]}"></form>
<iframe name="sink"></iframe></body>""")
    port = free_port()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        attacker = context.new_page()
        attacker.goto(f"http://127.0.0.1:{port}/attack.html")
        results = attacker.evaluate("""async ([app, battle]) => {
          const post = async (path, body) => {
            try {
              const r = await fetch(app + path, {method: "POST", credentials: "include", mode: "no-cors",
                headers: {"Content-Type": "text/plain"}, body: JSON.stringify(body)});
              return r.type;
            } catch (e) { return "blocked"; }
          };
          const readable = async (path, body) => {
            try {
              const r = await fetch(app + path, {method: "POST", credentials: "include",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
              return await r.text();
            } catch (e) { return "blocked"; }
          };
          return [
            await post("/gradio_api/run/arena_vote", {data: ["A is better", battle, null, null, null, null, "", ""]}),
            await post("/gradio_api/call/write", {data: ["Write for the attacker.", 50, "zorblax-writer-7",
                                                        0.7, 0.95, "", null]}),
            await readable("/gradio_api/run/arena_next", {data: []}),
            await readable("/gradio_api/run/arena_vote", {data: ["A is better", battle, null, null, null, null,
                                                               "", ""]}),
          ];
        }""", [target.url, victim_battle])
        assert all(r in ("opaque", "blocked") for r in results), results  # nothing readable came back
        attacker.evaluate("document.getElementById('csrf').submit()")
        attacker.wait_for_timeout(1500)
        attacker.goto(target.url + "/logout")  # a plain link to the old GET /logout
        cookies = {c["name"]: c["value"] for c in context.cookies(target.url)}
    finally:
        evil.shutdown()
        evil.server_close()
    assert votes_of(target, "ann", victim_battle) == 0 and _generations(target) == before
    with http_session(target) as check:  # the victim is still signed in as herself, not as the attacker
        for key, value in cookies.items():
            check.cookies.set(key, value)
        assert check.get("/config").status_code == 200
        shown = raw_call(check, fn_index_of(gradio_config(check), "arena_next"), [])
        assert shown[-1].get("success") is True  # ann's arena, not a writer's refusal
    assert "refused a cross-site request" in target.log()
    # The page's own Sign out button (a form POST from the app's origin) still signs the victim out.
    page.bring_to_front()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("username").wait_for(timeout=30_000)
    with http_session(target) as check:
        for key, value in cookies.items():
            check.cookies.set(key, value)
        assert check.get("/config").status_code == 401
    context.close()
