"""A scripted OpenAI-compatible server on 127.0.0.1 for the training tests: no model, every request
recorded, every answer from a function of the request body.

It answers what the project's clients ask: ``GET /v1/models`` (with ``max_model_len``),
``POST /tokenize`` (a rough count), and ``POST /v1/completions`` and ``/v1/chat/completions``,
streamed (server-sent events with usage) or not.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


@contextmanager
def scripted_server(reply: Callable[[dict], str], *, model: str = "scripted") -> Iterator[tuple[str, list[dict]]]:
    """Serve ``reply(body) -> text`` for every completion request; yields ``(base_url, bodies)``."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": model, "object": "model", "max_model_len": 32768}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path.endswith("/tokenize"):
                self._send({"count": len(json.dumps(body)) // 4 + 1})
                return
            bodies.append(body)
            text, chat = reply(body), self.path.endswith("/chat/completions")
            usage = {"prompt_tokens": 20, "completion_tokens": len(text.split()), "total_tokens": 20 + len(text.split())}
            choice = {"index": 0, "finish_reason": "stop", **({"message": {"role": "assistant", "content": text}}
                                                              if chat else {"text": text})}
            if not body.get("stream"):
                self._send({"id": "s", "object": "chat.completion" if chat else "text_completion", "created": 0,
                            "model": model, "choices": [choice], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            delta = {"delta": {"content": text}} if chat else {"text": text}
            for piece, finish in ((delta, None), ({"delta": {}} if chat else {"text": ""}, "stop")):
                chunk = {"id": "s", "object": "chat.completion.chunk" if chat else "text_completion", "created": 0,
                         "model": model, "choices": [{"index": 0, **piece, "finish_reason": finish}], "usage": usage}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()
