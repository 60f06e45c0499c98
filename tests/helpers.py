"""Helpers the tests and the benchmarks share: one copy each.

- :func:`lwz`: the ``lwz`` command in a child process (the installed entry point, as a user runs it);
- :func:`run_json`: ``lwz`` in this process, its one JSON value on stdout;
- :func:`free_port`: a free TCP port on 127.0.0.1;
- :func:`user_id`: a user's id by name;
- :func:`cast`: a vote cast the way the arena casts it (assignment, then ``arena.rules.cast_vote``);
- :class:`ScriptedOpenAIServer`: an OpenAI-compatible server without a model, streaming what a
  script says (a paced long text for benchmarks, a stream that hangs for the stall test, a judge);
- :func:`add_writer_and_judge`: a writer on the real vLLM server and a scripted judge, registered.

Importing this module starts nothing and loads nothing heavy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
LWZ = REPO_ROOT / ".venv" / "bin" / "lwz"


def lwz(*args: str, db: str | None = None, stdin: str | None = None, cwd=None, env: dict | None = None,
        timeout: float | None = 600, show_progress: bool = False) -> subprocess.CompletedProcess:
    """Run ``lwz [--db DB] ARGS`` as a child process and return it finished (text output captured;
    with ``show_progress`` its stderr, the progress bars, goes to this process's instead, for the
    long runs of a benchmark).

    ``LWZ_DATABASE_URL`` is taken out of the environment so that only ``db`` picks the database;
    ``env`` adds or overrides variables.
    """
    command = [str(LWZ)] + (["--db", db] if db else []) + list(args)
    environment = {k: v for k, v in os.environ.items() if k != "LWZ_DATABASE_URL"} | (env or {})
    return subprocess.run(command, input=stdin, stdout=subprocess.PIPE, stderr=None if show_progress else subprocess.PIPE,
                          text=True, timeout=timeout, cwd=cwd, env=environment)


def run_json(capsys, argv: list[str]) -> Any:
    """``lwz ARGV`` in this process; asserts exit 0 and returns the one JSON value it printed."""
    from lwz_cli.main import main

    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)  # exactly one JSON value, nothing else on stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_id(where, name: str) -> int:
    """The id of user ``name`` in ``where``: an engine, or anything holding one as ``.engine`` (a live app)."""
    from storage.engine import session_scope
    from storage.users import get_user

    with session_scope(getattr(where, "engine", where)) as session:
        return get_user(session, name=name).id


def cast(session, *, battle_id: int, annotator_id: int, winner: str, too_fast: bool = False):
    """Show ``battle_id`` to the annotator and cast their vote through :func:`arena.rules.cast_vote`,
    as the Arena tab and the vote route do. ``too_fast`` sets the reading speed so that the arena
    flags the vote (the speed it expects is unreachable) or never does (any speed is fast enough)."""
    from arena.rules import cast_vote
    from storage.votes import assign_battle

    assign_battle(session, battle_id=battle_id, annotator_id=annotator_id)
    return cast_vote(session, battle_id=battle_id, annotator_id=annotator_id, winner=winner,
                     words_per_minute=1e-6 if too_fast else 1e12)


class ScriptedOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 that answers without a model.

    ``GET /v1/models`` lists one model (with ``max_model_len``), ``POST .../tokenize`` counts about
    a token per 4 bytes, and ``POST /v1/chat/completions`` and ``/v1/completions`` answer with the
    text pieces ``script(body)`` yields (``body`` is the request's JSON), four tokens a piece, then
    finish with ``finish``: streamed (server-sent events with usage) when the request asks for a
    stream, else in one JSON reply. Every completion request's body is kept in ``bodies``. With
    ``hang=True`` the stream stays open after the script instead, until :meth:`stop`; with
    ``silent=True`` a completion request is read and never answered (no headers, no byte), until
    :meth:`stop`. Use as a context manager or call :meth:`stop`; ``base_url`` ends in ``/v1``.
    """

    def __init__(self, script: Callable[[dict], Iterable[str]] = lambda body: (), *, hang: bool = False,
                 silent: bool = False, model: str = "scripted", max_model_len: int = 32768,
                 finish: str = "length") -> None:
        release = self._release = threading.Event()
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"object": "list", "data": [{"id": model, "object": "model", "max_model_len": max_model_len}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.endswith("/tokenize"):
                    self._json({"count": len(json.dumps(body)) // 4 + 1})
                    return
                bodies.append(body)
                if silent:
                    release.wait()
                    return
                chat = self.path.endswith("/chat/completions")
                kind = "chat.completion" if chat else "text_completion"

                def usage(tokens: int) -> dict:
                    return {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}

                if not body.get("stream"):
                    pieces = list(script(body))
                    text = "".join(pieces)
                    choice = {"index": 0, "finish_reason": finish,
                              **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
                    self._json({"id": "s", "object": kind, "created": 0, "model": model, "choices": [choice],
                                "usage": usage(4 * len(pieces))})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                tokens = 0

                def send(text: str, reason) -> None:
                    piece = {"delta": {"content": text} if text else {}} if chat else {"text": text}
                    chunk = {"id": "s", "object": kind + ".chunk" if chat else kind, "created": 0, "model": model,
                             "choices": [{"index": 0, **piece, "finish_reason": reason}], "usage": usage(tokens)}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()

                try:
                    for piece in script(body):
                        tokens += 4
                        send(piece, None)
                    if hang:
                        release.wait()
                        return
                    send("", finish)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ScriptedOpenAIServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def add_writer_and_judge(engine, *, writer: str, vllm_server, judge: ScriptedOpenAIServer) -> None:
    """Register ``writer`` on the real vLLM server and ``judge`` on a scripted server, both ``direct``.

    The bundled 135M model cannot judge (asked for a verdict or a score it writes prose, whatever
    the prompt), so judge and rubric runs take their verdicts from a script that always gives one.
    """
    from storage.catalog import add_model
    from storage.engine import session_scope

    with session_scope(engine) as session:
        add_model(session, name=writer, backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                  template="direct")
        add_model(session, name="judge", backend="openai", base_url=judge.base_url, model_id="judge",
                  template="direct")


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still alive."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def group_gone(pgid: int, seconds: float) -> bool:
    """Whether the process group ``pgid`` has ended within ``seconds`` (polled twice a second)."""
    deadline = time.monotonic() + seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not group_alive(pgid)


def kill_group(pgid: Optional[int]) -> None:
    """SIGKILL the process group ``pgid`` if it is still alive (a test's clean-up)."""
    if pgid is not None and group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
