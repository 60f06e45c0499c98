"""Faults seen from the Write tab: a model server that does not answer gives a message, not a hang."""

import json

import pytest

from storage.engine import session_scope
from storage.generations import list_generations
from tests.helpers import free_port
from tests.live_app import fn_index_of, gradio_config, http_session, raw_call

pytestmark = pytest.mark.slow


def test_a_down_backend_gives_an_error_in_the_page_and_the_app_keeps_serving(live_app):
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    app = live_app(backend="openai", base_url=dead_url, model="gone")
    client = http_session(app)
    write = fn_index_of(gradio_config(client), "write")
    messages = raw_call(client, write, ["Write a haiku.", 20, "gone", 0.6, 0.95, "", 8, "auto"], timeout=60)
    text = json.dumps(messages).replace("\\\\", "")  # the page's Markdown escapes ":" (no link can form)
    assert messages[-1]["success"] is True
    assert "**Error:**" in text and dead_url in text, text[-1500:]
    with session_scope(app.engine) as s:
        assert list_generations(s) == []  # refused before any row was written
    # The same server still answers other requests.
    again = raw_call(client, fn_index_of(gradio_config(client), "my_writing"), [])
    assert again[-1]["success"] is True


class CuttableRelay:
    """A TCP relay in front of a real server; ``cut()`` drops every connection at once and stops
    listening, which is what clients see when the server process dies mid-stream."""

    def __init__(self, host: str, port: int) -> None:
        import socket
        import threading

        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def test_a_backend_dying_mid_stream_keeps_the_partial_text_as_interrupted(live_app, vllm_server):
    import threading
    import time
    from urllib.parse import urlparse

    from storage.catalog import add_model

    upstream = urlparse(vllm_server.base_url)
    relay = CuttableRelay(upstream.hostname, upstream.port)
    app = live_app(backend="openai", base_url=f"http://127.0.0.1:{relay.port}/v1", model=vllm_server.model)
    with session_scope(app.engine) as s:
        add_model(s, name="healthy", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model)
    client = http_session(app)
    write = fn_index_of(gradio_config(client), "write")
    result = {}
    worker = threading.Thread(target=lambda: result.update(messages=raw_call(
        client, write, ["Write a long essay about harbours.", 3000, vllm_server.model, 0.6, 0.95, "", 16, "one request"],
        timeout=600)))
    worker.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # wait until some text has been saved, then kill the "server"
        with session_scope(app.engine) as s:
            rows = list_generations(s)
        if rows and (rows[0].think or rows[0].answer):
            break
        assert worker.is_alive() or rows, f"the request was not started: {json.dumps(result.get('messages'))[-600:]}"
        time.sleep(0.5)
    relay.cut()
    worker.join(timeout=120)
    text = json.dumps(result["messages"])
    assert "**Error:**" in text, text[-1500:]
    with session_scope(app.engine) as s:
        (row,) = list_generations(s)
    assert row.status == "interrupted" and (row.think or row.answer) and row.error
    # Everyone else is still served: a generation on a healthy model completes.
    other = http_session(app)
    done = raw_call(other, write, ["Write one line about rain.", 10, "healthy", 0.6, 0.95, "", 8, "auto"], timeout=600)
    assert done[-1]["success"] is True
    with session_scope(app.engine) as s:
        newest = list_generations(s, limit=1)[0]
    # Finished with text: "short" is a finished text that stopped well short of its 10-word target.
    assert newest.id != row.id and newest.status in ("complete", "truncated", "short") and newest.answer
