"""Sign-in rules as plain functions, and the HTTP layer around Gradio in-process (no server started).

The same rules are attacked over real HTTP in ``tests/security/test_attacks.py``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from storage.models import SigninFailure
from storage.sessions import (
    create_session,
    purge_sessions,
    revoke_user_sessions,
    session_user,
)
from storage.signin import LIMIT, LOCKOUT, locked_until, record_failure
from storage.users import add_user

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _fail(session, *, name="bob", address="10.0.0.1", at):
    record_failure(session, name=name, address=address, now=at)


def test_nine_failures_do_not_lock_the_tenth_does_for_five_minutes(engine):
    with session_scope(engine) as s:
        for i in range(LIMIT - 1):
            _fail(s, address=f"10.0.0.{i}", at=T0 + timedelta(seconds=10 * i))
        last = T0 + timedelta(seconds=100)
        assert locked_until(s, name="bob", address="10.9.9.9", now=last) is None
        _fail(s, address="10.0.0.50", at=last)
        assert locked_until(s, name="bob", address="10.9.9.9", now=last) == last + LOCKOUT
        assert locked_until(s, name="bob", address="10.9.9.9", now=last + LOCKOUT - timedelta(seconds=1))
        assert locked_until(s, name="bob", address="10.9.9.9", now=last + LOCKOUT) is None
        assert locked_until(s, name="carol", address="10.9.9.9", now=last) is None


def test_failures_spread_wider_than_the_window_do_not_lock(engine):
    with session_scope(engine) as s:
        for i in range(LIMIT):
            _fail(s, address=f"10.0.0.{i}", at=T0 + timedelta(seconds=40 * i))  # 10 over 6 minutes
        assert locked_until(s, name="bob", address="10.9.9.9", now=T0 + timedelta(seconds=361)) is None


def test_one_address_locks_every_name_and_old_rows_are_forgotten(engine):
    with session_scope(engine) as s:
        for i in range(LIMIT):
            _fail(s, name=f"n{i}", address="10.0.0.7", at=T0 + timedelta(seconds=i))
        assert locked_until(s, name="anyone", address="10.0.0.7", now=T0 + timedelta(seconds=20))
        assert locked_until(s, name="anyone", address="10.0.0.8", now=T0 + timedelta(seconds=20)) is None
        _fail(s, name="late", address="10.0.0.9", at=T0 + timedelta(hours=1))
        assert s.execute(sa.select(sa.func.count()).select_from(SigninFailure)).scalar_one() == 1


def test_unknown_names_and_password_less_users_cost_one_password_hash(engine, monkeypatch):
    from storage import users

    with session_scope(engine) as s:
        add_user(s, name="ann", role="annotator", password="pw")
        add_user(s, name="nopw", role="annotator")
    calls = []
    real = users.hashlib.scrypt
    monkeypatch.setattr(users.hashlib, "scrypt", lambda *a, **k: calls.append(k["n"]) or real(*a, **k))
    users._dummy_hash()  # made once per process, before the clock matters
    for name in ("ann", "nobody", "nopw"):
        calls.clear()
        with session_scope(engine) as s:
            assert users.authenticate(s, name=name, password="wrong") is None
        assert calls == [2**14], name


def test_sessions_live_until_revoked_or_expired(engine):
    with session_scope(engine) as s:
        ann = add_user(s, name="ann", role="annotator", password="pw")
        one = create_session(s, user_id=ann.id, now=T0, ttl=timedelta(hours=1))
        two = create_session(s, user_id=ann.id, now=T0, ttl=timedelta(hours=1))
        assert session_user(s, token=one, now=T0).name == "ann"
        assert session_user(s, token=one, now=T0 + timedelta(hours=1)) is None  # expired
        assert session_user(s, token="x" * 43, now=T0) is None
        assert revoke_user_sessions(s, user_id=ann.id, now=T0) == 2
        assert session_user(s, token=two, now=T0) is None
        assert purge_sessions(s, now=T0 + timedelta(days=2)) == 2


@pytest.fixture
def layer(sqlite_engine):
    """The FastAPI layer around a one-button Gradio app, served in-process by Starlette's TestClient."""
    import gradio as gr
    from fastapi.testclient import TestClient

    from webapp.app import AppContext, ServeSettings
    from webapp.server import build_server

    with session_scope(sqlite_engine) as s:
        add_user(s, name="ann", role="annotator", password="pw")
    with gr.Blocks() as demo:
        gr.Button("nothing")
    demo.queue()
    server = build_server(AppContext(engine=sqlite_engine, settings=ServeSettings(auth=True)), demo)
    with TestClient(server) as client:
        yield client


def test_password_check_runs_off_the_event_loop(layer, monkeypatch):
    import webapp.auth

    real = webapp.auth.sign_in
    seen = []

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append("on the event loop")
        except RuntimeError:
            seen.append("in a worker thread")
        return real(*args, **kwargs)

    monkeypatch.setattr(webapp.auth, "sign_in", spy)
    assert layer.post("/login", data={"username": "ann", "password": "pw"}).status_code == 200
    assert seen == ["in a worker thread"]


def test_sign_in_sets_gradios_cookie_and_sign_out_ends_it(layer):
    assert layer.get("/config").status_code == 401
    assert layer.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
    response = layer.post("/login", data={"username": "ann", "password": "pw"})
    assert response.status_code == 200 and "access-token-lwz" in response.headers["set-cookie"]
    assert layer.get("/config").status_code == 200
    token = layer.cookies.get("access-token-unsecure-lwz")
    assert layer.get("/logout", follow_redirects=False).status_code == 405  # a link cannot sign anyone out
    assert layer.get("/config").status_code == 200
    assert layer.post("/logout", follow_redirects=False).status_code == 303
    layer.cookies.set("access-token-unsecure-lwz", token)
    assert layer.get("/config").status_code == 401


def test_local_mode_arena_routes_act_as_the_local_user(sqlite_engine):
    """Without --auth every request is the local admin, on the JSON routes as in the tabs."""
    import gradio as gr
    from fastapi.testclient import TestClient

    from arena.service import EMPTY_POOL_MESSAGE
    from webapp.app import AppContext, ServeSettings
    from webapp.auth import ensure_local_user
    from webapp.server import build_server

    ensure_local_user(sqlite_engine)
    with gr.Blocks() as demo:
        gr.Button("nothing")
    demo.queue()
    server = build_server(AppContext(engine=sqlite_engine, settings=ServeSettings(auth=False)), demo)
    with TestClient(server) as client:
        assert client.post("/api/arena/next", json={}).json() == {"message": EMPTY_POOL_MESSAGE}
        refused = client.post("/api/arena/vote", json={"battle_id": 3, "winner": "left"})
        assert refused.status_code == 400 and "not assigned to you" in refused.json()["error"]


def test_forty_parallel_wrong_sign_ins_check_the_limit_exactly(engine, monkeypatch):
    """The throttle counts an attempt before its password is checked, in one locked transaction
    (SQLite and PostgreSQL): forty at once for one name get LIMIT checks, the rest are throttled."""
    import threading

    import webapp.auth

    checks, lock = [], threading.Lock()
    real = webapp.auth.authenticate

    def counted(*args, **kwargs):
        with lock:
            checks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(webapp.auth, "authenticate", counted)
    start, outcomes = threading.Barrier(40), []

    def attempt(i):
        start.wait()
        try:
            webapp.auth.sign_in(engine, name="target", password="wrong", address=f"10.7.{i}.1")
        except webapp.auth.SigninThrottled:
            outcomes.append("throttled")
        except webapp.auth.SigninRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checks) == LIMIT and sorted(outcomes) == ["refused"] * LIMIT + ["throttled"] * (40 - LIMIT)


def test_a_right_password_takes_its_attempt_back(engine):
    from webapp.auth import sign_in

    with session_scope(engine) as s:
        add_user(s, name="ann", role="annotator", password="pw")
    for _ in range(LIMIT + 2):  # successes never count towards a lockout
        assert sign_in(engine, name="ann", password="pw", address="10.8.0.1")
    with session_scope(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(SigninFailure)).scalar_one() == 0


def test_one_address_holds_one_password_check_at_a_time():
    """Wrong sign-ins from one address queue in their own lane; another address's check starts at once."""
    import threading

    from webapp.signin_routes import PasswordChecks

    release, running, lock = threading.Event(), [], threading.Lock()

    def blocked(address):
        def work():
            with lock:
                running.append(address)
            release.wait(30)
            return address
        return work

    async def scenario():
        checks = PasswordChecks(at_once=2)
        await checks.run("10.9.0.3", lambda: "ok", name="victim")  # the victim signed in before
        flood = [asyncio.create_task(checks.run("10.9.0.1", blocked("attacker"))) for _ in range(16)]
        await asyncio.sleep(0.05)
        other = await asyncio.wait_for(checks.run("10.9.0.2", lambda: "victim", name="victim"), timeout=30)
        seen = list(running)
        release.set()
        await asyncio.gather(*flood)
        return other, seen, checks.lanes

    other, seen, lanes = asyncio.run(scenario())
    assert other == "victim" and seen == ["attacker"] and lanes == {}


def _held_wrong_check(release, order: list):
    """``wrong(address)``: a password check that notes ``address`` in ``order`` when it starts,
    holds its thread until ``release`` is set, then fails."""
    import threading

    lock = threading.Lock()

    def wrong(address):
        def work():
            with lock:
                order.append(address)
            release.wait(30)
            raise ValueError("wrong password")
        return work

    return wrong


def test_wrong_sign_ins_from_many_addresses_do_not_queue_ahead_of_another_user():
    """Sixteen addresses whose last check failed keep a thread busy and a queue waiting; a
    sign-in from a clean address takes the next free thread, ahead of the whole queue."""
    import threading

    from webapp.signin_routes import PasswordChecks

    release, order = threading.Event(), []
    wrong = _held_wrong_check(release, order)

    async def scenario():
        checks = PasswordChecks(at_once=2)
        attackers = [f"10.7.0.{i}" for i in range(16)]
        for address in attackers:  # each has failed once: now suspect
            checks.failed[address] = time.monotonic()
        crowd = [asyncio.create_task(checks.run(a, wrong(a))) for a in attackers]
        await asyncio.sleep(0.05)
        assert checks.running == 1 and len(checks.waiting[2]) == 15  # one thread kept for returning names
        victim = asyncio.create_task(checks.run("10.7.1.1", lambda: order.append("victim") or "victim"))
        await asyncio.sleep(0.05)
        release.set()  # the two running checks end; the next thread goes to the victim
        result = await asyncio.wait_for(victim, timeout=30)
        await asyncio.gather(*crowd, return_exceptions=True)
        return result, checks

    result, checks = asyncio.run(scenario())
    assert result == "victim" and order.index("victim") == 1, order  # after the one running, never after the crowd
    assert checks.running == 0 and checks.lanes == {} and "10.7.1.1" not in checks.failed
    assert all(checks.suspect(f"10.7.0.{i}") for i in range(16))


def test_a_returning_user_is_served_ahead_of_a_crowd_from_fresh_addresses():
    """Sixteen wrong sign-ins, each from an address never seen (nothing marks them), run one at a
    time: a name that signed in before, from a fresh address too, takes the thread kept for it at
    once; a first sign-in waits its turn; a failure for the name takes its place away."""
    import threading

    from webapp.signin_routes import PasswordChecks

    release, order = threading.Event(), []
    wrong = _held_wrong_check(release, order)

    async def scenario():
        checks = PasswordChecks(at_once=2)
        assert await checks.run("10.6.9.9", lambda: "ok", name="victim") == "ok"  # signed in once, elsewhere
        crowd = [asyncio.create_task(checks.run(f"10.6.0.{i}", wrong(f"10.6.0.{i}"), name=f"nobody-{i}"))
                 for i in range(16)]
        await asyncio.sleep(0.05)
        assert checks.running == 1 and len(checks.waiting[1]) == 15 and checks.rank("10.6.1.1", "victim") == 0
        newcomer = asyncio.create_task(checks.run("10.6.1.2", lambda: order.append("newcomer") or "n", name="newbie"))
        # the thread kept for returning names: the victim's check runs now, while the crowd's is still running
        assert await asyncio.wait_for(checks.run("10.6.1.1", lambda: order.append("victim") or "v", name="victim"),
                                      timeout=30) == "v"
        release.set()
        await asyncio.wait_for(newcomer, timeout=30)
        await asyncio.gather(*crowd, return_exceptions=True)
        with pytest.raises(ValueError):
            await checks.run("10.6.2.1", wrong("guess"), name="victim")
        return checks

    checks = asyncio.run(scenario())
    assert order.index("victim") == 1, order  # beside the one running, never after the crowd
    assert order.index("newcomer") > order.index("10.6.0.15"), order  # a first sign-in: behind the crowd
    assert checks.rank("10.6.3.1", "victim") == 1 and checks.rank("10.6.3.1", "newbie") == 0


def test_origins_are_compared_as_browsers_send_them():
    from webapp.http import claimed_origin, is_json_type, origin_of, own_origin

    scope = {"type": "http", "scheme": "http", "headers": [(b"host", b"127.0.0.1:7860")]}
    assert own_origin(scope) == "http://127.0.0.1:7860"
    assert own_origin({**scope, "scheme": "https", "headers": [(b"host", b"Writer.Example.org:443")]}) == \
        "https://writer.example.org"
    assert origin_of("http://127.0.0.1:7860/page?x=1") == "http://127.0.0.1:7860"
    assert origin_of("null") is None and origin_of("javascript:alert(1)") is None
    assert claimed_origin({}) == (False, None)
    assert claimed_origin({"referer": "http://127.0.0.1:9/a"}) == (True, "http://127.0.0.1:9")
    assert is_json_type("application/JSON; charset=UTF-8") and not is_json_type("text/plain")


def test_trusted_origins_are_checked_at_start():
    from core.errors import UserError
    from webapp.app import ServeSettings

    ServeSettings(trusted_origins=("https://writer.example.org",)).validate()
    with pytest.raises(UserError, match="--trusted-origin takes an origin"):
        ServeSettings(trusted_origins=("https://writer.example.org/app",)).validate()


def _server(engine, **settings):
    import gradio as gr
    from fastapi.testclient import TestClient

    from webapp.app import AppContext, ServeSettings
    from webapp.server import build_server

    with gr.Blocks() as demo:
        gr.Button("nothing")
    demo.queue()
    return TestClient(build_server(AppContext(engine=engine, settings=ServeSettings(**settings)), demo))


def test_a_trusted_origin_may_sign_in_and_others_may_not(sqlite_engine):
    with session_scope(sqlite_engine) as s:
        add_user(s, name="ann", role="annotator", password="pw")
    with _server(sqlite_engine, auth=True, trusted_origins=("https://writer.example.org",)) as client:
        form = {"username": "ann", "password": "pw"}
        assert client.post("/login", data=form, headers={"Origin": "https://writer.example.org"}).status_code == 200
        assert client.post("/login", data=form, headers={"Origin": "https://evil.example.org"}).status_code == 403
        assert client.post("/login", data=form, headers={"Origin": "http://testserver"}).status_code == 200  # own


def test_a_lone_surrogate_in_a_vote_is_a_400_on_both_databases(engine):
    """Refused in the HTTP layer, before any database sees it (SQLite and PostgreSQL)."""
    from webapp.auth import ensure_local_user

    ensure_local_user(engine)
    with _server(engine, auth=False) as client:
        body = b'{"battle_id": 1, "winner": "left", "reason": "x\\ud800y"}'
        response = client.post("/api/arena/vote", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "lone surrogate" in response.json()["error"]
        nested = client.post("/api/arena/next", content=b"[" * 2048, headers={"Content-Type": "application/json"})
        assert nested.status_code == 400 and "nests deeper" in nested.json()["error"]
