"""Fixtures for the web app: a real ``lwz serve`` process and a real headless Chromium.

``live_app`` is a factory: ``app = live_app(auth=True, users=[("ann", "annotator", "pw")])``
starts ``lwz --db sqlite:///<tmp> serve --port <free>`` on a fresh database (users and models
are added before the server starts), waits until the page answers, and returns a ``LiveApp``
with ``url``, ``db_url`` and ``engine``. Every process it started is stopped (with its
children) when the test ends. ``start_live_app`` is the same as a context manager, for
module-scoped fixtures.

``browser`` (session-wide) launches /usr/bin/chromium through Playwright's sync API with the
flags in ENVIRONMENT.md; ``page`` is a fresh context and page per test. ``login(page, app,
name, password)`` signs in through Gradio's login form; ``http_session(app, name, password)``
gives an ``httpx.Client`` holding the sign-in cookie, for raw HTTP calls.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
LWZ = REPO_ROOT / ".venv" / "bin" / "lwz"
START_TIMEOUT_S = 120.0


@dataclass
class LiveApp:
    """A running ``lwz serve``: its address, its database, and its log (printed when a test fails)."""

    url: str
    db_url: str
    engine: object
    process: subprocess.Popen
    log_path: Path
    users: dict[str, tuple[str, str]] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lwz serve exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/", timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"lwz serve did not answer at {url} within {timeout:.0f} s:\n{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group the server leads, then SIGKILL whatever is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@contextmanager
def start_live_app(
    workdir: Path,
    *,
    auth: bool = False,
    backend: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    users: list[tuple[str, str, str]] = (),
    extra_args: list[str] = (),
    env: dict[str, str] | None = None,
    db_url: str | None = None,
) -> Iterator[LiveApp]:
    """Start ``lwz serve`` on a fresh SQLite database under ``workdir`` (or ``db_url``); stop it on exit.

    ``users`` are ``(name, role, password)`` triples added before the server starts.
    """
    from storage.engine import make_engine, upgrade
    from storage.engine import session_scope
    from storage.users import add_user

    workdir.mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{workdir / 'app.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    with session_scope(engine) as session:
        for name, role, password in users:
            add_user(session, name=name, role=role, password=password)
    port = free_port()
    command = [str(LWZ), "--db", db_url, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if auth:
        command.append("--auth")
    for flag, value in (("--backend", backend), ("--base-url", base_url), ("--model", model)):
        if value is not None:
            command += [flag, value]
    command += list(extra_args)
    log_path = workdir / f"serve-{port}.log"
    proc_env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc_env.pop("LWZ_DATABASE_URL", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                   env=proc_env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    app = LiveApp(url=url, db_url=db_url, engine=engine, process=process, log_path=log_path,
                  users={name: (role, password) for name, role, password in users})
    try:
        _wait_until_up(url, process, log_path, START_TIMEOUT_S)
        yield app
    finally:
        _stop(process)
        engine.dispose()


WRITE_USERS = [("ann", "writer", "ann-pw"), ("bob", "writer", "bob-pw"), ("annie", "annotator", "annie-pw"),
               ("rita", "researcher", "rita-pw")]


@pytest.fixture(scope="session")
def write_app(tmp_path_factory):
    """One ``lwz serve --auth`` (embedded model) shared by the Write tab's browser and HTTP tests,
    with the users of :data:`WRITE_USERS` (name, role, password)."""
    with start_live_app(tmp_path_factory.mktemp("write-app"), auth=True, users=WRITE_USERS) as live:
        yield live


@pytest.fixture
def live_app(tmp_path, request):
    """Factory: ``live_app(**options)`` starts a server (see ``start_live_app``); all are stopped at teardown."""
    stack: list = []

    def start(**options) -> LiveApp:
        manager = start_live_app(tmp_path / f"app{len(stack)}", **options)
        app = manager.__enter__()
        stack.append((manager, app))
        return app

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for manager, app in reversed(stack):
        if failed:
            sys.stderr.write(f"--- lwz serve log ({app.url}) ---\n{app.log()[-6000:]}\n")
        manager.__exit__(None, None, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the test item, so fixtures can print logs after a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def login(page, app: LiveApp, name: str, password: str) -> None:
    """Sign in through Gradio's login form and wait for the app to load."""
    page.goto(app.url + "/")
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("gradio-app .tab-container, gradio-app [role=tablist]", timeout=30_000)


def http_session(app: LiveApp, name: str | None = None, password: str | None = None):
    """An ``httpx.Client`` on the app, signed in through ``POST /login`` when a name is given."""
    import httpx

    client = httpx.Client(base_url=app.url, timeout=30.0)
    if name is not None:
        response = client.post("/login", data={"username": name, "password": password or ""})
        response.raise_for_status()
    return client


def gradio_config(client) -> dict:
    """The app's ``/config`` (components and dependencies), as the signed-in client sees it."""
    response = client.get("/config")
    response.raise_for_status()
    return response.json()


def fn_index_of(config: dict, api_name: str) -> int:
    """The ``fn_index`` of the event registered with ``api_name`` (hidden events included)."""
    for index, dep in enumerate(config["dependencies"]):
        if dep.get("api_name") == api_name:
            return dep.get("id", index)
    raise KeyError(f"no event with api_name {api_name!r}")


def raw_call(client, fn_index: int, data: list, *, session_hash: str | None = None, timeout: float = 60.0) -> list[dict]:
    """Run an event the way a hand-made POST would: ``/gradio_api/queue/join`` then read the SSE stream.

    Returns every message of this event (``process_generating`` updates, then ``process_completed``).
    A refused event shows as ``{"msg": "process_completed", "success": False, "output": {"error": ...}}``.
    """
    import json
    import uuid

    session_hash = session_hash or uuid.uuid4().hex[:11]
    joined = client.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None,
    })
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    messages: list[dict] = []
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash},
                       timeout=timeout) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (None, event_id):
                continue
            messages.append(message)
            if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                break
    return messages


def stored_generation(app, *, author, request, answer, think="", status="complete"):
    """A finished generation written straight through storage (for tests about showing, not writing)."""
    from storage.catalog import get_model, get_or_add_prompt
    from storage.engine import session_scope
    from storage.generations import create_generation, finish_generation
    from storage.users import get_user

    with session_scope(app.engine) as s:
        model = get_model(s, name="smollm2-135m")
        prompt, _ = get_or_add_prompt(s, text=request)
        g = create_generation(s, prompt_id=prompt.id, model_id=model.id, author_id=get_user(s, name=author).id,
                              params={"seed": 1})
        finish_generation(s, generation_id=g.id, status=status, finish_reason="stop", think=think, answer=answer,
                          answer_words=len(answer.split()), completion_tokens=10, duration_ms=1000.0)
        return g.id
