"""Hand-made HTTP calls to the Write tab's events: every handler checks role and owner on the server.

A hidden or disabled button is no protection: these tests sign in with ``POST /login`` and run
events by ``fn_index`` through ``/gradio_api/queue/join``, as an attacker would.
"""

import json

import pytest

from storage.engine import session_scope
from storage.generations import get_generation, list_generations
from storage.users import get_user
from tests.live_app import fn_index_of, gradio_config, http_session, raw_call, stored_generation

pytestmark = pytest.mark.slow


def call(app, name, password, api_name, data):
    client = http_session(app, name, password)
    return raw_call(client, fn_index_of(gradio_config(client), api_name), data)


def outcome(messages):
    done = messages[-1]
    assert done["msg"] == "process_completed", messages
    return done


def test_an_annotator_cannot_write_even_by_raw_post(write_app):
    with session_scope(write_app.engine) as s:
        annie = get_user(s, name="annie").id
    done = outcome(call(write_app, "annie", "annie-pw", "write",
                        ["Write a poem.", 20, "smollm2-135m", 0.6, 0.95, "", None, "auto"]))
    assert done["success"] is False and "annotator may not write" in done["output"]["error"]
    with session_scope(write_app.engine) as s:
        assert list_generations(s, author_id=annie) == []
    for api_name, data in (("my_writing", []), ("write_result", [None])):
        done = outcome(call(write_app, "annie", "annie-pw", api_name, data))
        assert done["success"] is False and "may not write" in done["output"]["error"], api_name


def test_a_writer_cannot_read_or_offer_another_writers_text(write_app):
    """Open and Send act on the server-side state of the caller's session, checked against the username."""
    secret = "Bob's unpublished chapter about the ferry."
    gid = stored_generation(write_app, author="bob", request="bob's raw request", answer=secret)

    def open_then_send(name, password, session):
        client = http_session(write_app, name, password)
        config = gradio_config(client)
        opened = raw_call(client, fn_index_of(config, "open_writing"), [gid], session_hash=session)
        sent = raw_call(client, fn_index_of(config, "send_to_arena"), [gid], session_hash=session)
        return json.dumps(opened), json.dumps(sent)

    opened, sent = open_then_send("ann", "ann-pw", "annsession1")
    assert secret not in opened and "bob's raw request" not in opened
    assert f"there is no generation #{gid} that you may open" in opened and "Not sent" in sent
    with session_scope(write_app.engine) as s:
        assert get_generation(s, generation_id=gid).in_pool is False
    opened, sent = open_then_send("bob", "bob-pw", "bobsession1")
    assert secret in opened and "is in the arena pool" in sent
    with session_scope(write_app.engine) as s:
        assert get_generation(s, generation_id=gid).in_pool is True


def test_stop_reaches_only_the_callers_runs(write_app):
    done = outcome(call(write_app, "ann", "ann-pw", "stop", []))
    assert done["success"] is True and "Nothing is being written" in json.dumps(done)
    done = outcome(call(write_app, "annie", "annie-pw", "stop", []))
    assert done["success"] is False


def test_no_event_runs_at_the_default_concurrency_of_one(write_app):
    from webapp.app import AppContext, ServeSettings, build_app

    demo = build_app(AppContext(engine=write_app.engine, settings=ServeSettings(auth=True)))
    demo.queue(default_concurrency_limit=16)
    limits = {fn.name: fn.concurrency_limit for fn in demo.fns.values() if fn.queue is not False}
    assert limits and all(limit is None or limit == "default" or limit > 1 for limit in limits.values()), limits
    assert demo._queue.default_concurrency_limit == 16
