"""Closing the page cancels its run, queued runs included: a real ``lwz serve`` on the embedded
model, one page writing a long text and a second page whose request waits in the model's queue
behind it. When the second page goes away (its heartbeat, the connection a tab holds open,
closes), its request must end as ``interrupted`` at once, while the first is still writing,
instead of waiting its turn and then writing for nobody."""

from __future__ import annotations

import json
import threading
import uuid

import httpx
import pytest

from tests.live_app import fn_index_of, gradio_config, http_session

pytestmark = pytest.mark.slow


def _join(client, fn_index: int, form: list, session: str) -> None:
    joined = client.post("/gradio_api/queue/join", json={"data": form, "fn_index": fn_index, "session_hash": session,
                                                         "event_data": None, "trigger_id": None})
    joined.raise_for_status()


def _updates(app, session: str, seen: threading.Event, until: threading.Event, wanted) -> None:
    """Read ``session``'s event stream; set ``seen`` at the first update ``wanted(update)`` accepts."""
    with httpx.Client(base_url=app.url, timeout=600) as client:
        with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and wanted(json.loads(line[5:])):
                    seen.set()
                if until.is_set():
                    return


def _rows(app) -> dict:
    from storage.engine import session_scope
    from storage.generations import list_generations

    with session_scope(app.engine) as s:
        return {row.params.get("target_words"): (row.status, row.finish_reason) for row in list_generations(s)}


def test_closing_a_page_whose_request_is_queued_cancels_it_at_once(live_app):
    app = live_app()
    client = http_session(app)
    write = fn_index_of(gradio_config(client), "write")
    first, second = uuid.uuid4().hex[:11], uuid.uuid4().hex[:11]
    done = threading.Event()
    first_writing, second_queued, beating, close_page = (threading.Event() for _ in range(4))
    readers = [  # started once their event has joined: an empty session's stream ends at once
        threading.Thread(target=_updates, args=(app, first, first_writing, done, lambda m: m.get("msg") == "process_generating"), daemon=True),
        threading.Thread(target=_updates, args=(app, second, second_queued, done, lambda m: "in the queue" in json.dumps(m)), daemon=True),
    ]

    def page():  # the second page's tab: holds its heartbeat open until the test closes it
        with httpx.Client(base_url=app.url, timeout=60) as heart:
            with heart.stream("GET", f"/gradio_api/heartbeat/{second}") as stream:
                for _ in stream.iter_lines():
                    beating.set()
                    close_page.wait()
                    return

    tab = threading.Thread(target=page, daemon=True)
    tab.start()
    try:
        assert beating.wait(60)
        _join(client, write, ["Write a long story about a lighthouse keeper.", 2000, "smollm2-135m", 0.6, 0.95, 1, 0, "auto"], first)
        readers[0].start()
        assert first_writing.wait(600)
        _join(client, write, ["Write about rain.", 20, "smollm2-135m", 0.6, 0.95, 1, 0, "auto"], second)
        readers[1].start()
        assert second_queued.wait(600)
        close_page.set()
        tab.join()
        ended = threading.Event()
        while not ended.wait(0.2):  # until the second row is finished (the server's own task does it) and
            rows = _rows(app)      # says why: its page was closed (the cancel itself is recorded first)
            if rows.get(20, ("streaming", None))[1] not in (None, "cancelled"):
                ended.set()
        assert rows[20] == ("interrupted", "closed")  # "interrupted", not "stopped by you"
        assert rows[2000][0] == "streaming"  # it ended while the first was still writing: no waiting its turn
    finally:
        close_page.set()
        done.set()
