"""The HTTP layer around the Gradio app: sign-in, sessions, page ownership, the fast vote route.

``lwz serve`` runs one FastAPI app with the Gradio Blocks mounted inside it. The layer adds
what Gradio's own login lacks for a deployment of several processes:

- **Sessions in the database.** ``POST /login`` stores a session (see :mod:`storage.sessions`)
  and hands its token to the browser in the cookies Gradio reads. Gradio's in-memory token
  table is replaced by :class:`DatabaseTokens`, and its cookie name is fixed instead of random
  per process, so a sign-in made on one process is honoured by all. ``GET /logout`` revokes
  every session of the user, everywhere. An expired or revoked token is simply unknown, so the
  page shows Gradio's sign-in form again.
- **Throttled sign-in**, off the event loop (see :func:`webapp.auth.sign_in`): HTTP 429 with
  ``Retry-After`` during a lockout.
- **Page ownership.** Gradio keys a page's events and its event stream by a client-chosen
  ``session_hash``. :class:`PageOwnership` binds each hash to the first signed-in user who
  uses it and refuses everyone else on every ``/gradio_api/`` route that names one. The binding
  lives in the process that holds that page's queue, which is the only one that could leak it.
  Gradio's ``/gradio_api/token`` (which returns the httponly session cookie to any script) is closed.
- **The fast vote route** (:mod:`webapp.vote_api`).
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' `Request` annotations at run time.

import contextvars
import json
import logging
import re
from collections import OrderedDict
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from sqlalchemy.engine import Engine

from webapp.auth import session_user_name

log = logging.getLogger("lwz.auth")

COOKIE_ID = "lwz"
"""Gradio names its cookies ``access-token-{cookie_id}``; the same name on every process."""
COOKIE_NAMES = (f"access-token-{COOKIE_ID}", f"access-token-unsecure-{COOKIE_ID}")
PASSWORD_CHECKS_AT_ONCE = 2
"""Password hashes computed at once per process; more sign-ins wait their turn, the event loop never."""
MAX_BOUND_PAGES = 200_000
AUTH_MESSAGE = "After 10 failed sign-ins for a name or from one address, sign-in pauses for 5 minutes."

_resolved: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar("lwz_token_user",
                                                                                          default=None)
_HASH_IN_PATH = re.compile(r"^/gradio_api/(?:heartbeat|stream)/([^/]+)")


def request_token(headers) -> str | None:
    """The session token from a request's cookies (either of Gradio's two cookie names)."""
    raw = headers.get("cookie") if hasattr(headers, "get") else None
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:  # a malformed Cookie header names no session
        return None
    for name in COOKIE_NAMES:
        if name in jar and jar[name].value:
            return jar[name].value
    return None


def user_for_token(engine: Engine, token: str | None) -> str | None:
    """The signed-in user's name, asked of the database once per request (remembered for that request)."""
    if not token:
        return None
    cached = _resolved.get()
    if cached is not None and cached[0] == token:
        return cached[1]
    name = session_user_name(engine, token)
    _resolved.set((token, name))
    return name


class DatabaseTokens:
    """Stands in for Gradio's ``app.tokens`` dict: every lookup asks the sessions table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, token, default=None):
        return user_for_token(self.engine, token) or default

    def __contains__(self, token) -> bool:
        return self.get(token) is not None

    def __getitem__(self, token):
        name = self.get(token)
        if name is None:
            raise KeyError(token)
        return name

    def __setitem__(self, token, name) -> None:
        raise RuntimeError("sessions are created by webapp.server's /login only")

    def keys(self):
        return []


class PageOwnership:
    """ASGI middleware: a ``session_hash`` belongs to the first signed-in user who names it.

    It looks for the hash where Gradio's routes take it (query string, path, JSON body) and
    answers 401 without a signed-in user and 403 for a hash bound to someone else.
    """

    def __init__(self, app, *, engine: Engine, auth: bool):
        self.app, self.engine, self.auth = app, engine, auth
        self.owners: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.auth or not scope["path"].startswith("/gradio_api/"):
            return await self.app(scope, receive, send)
        if scope["path"].rstrip("/") == "/gradio_api/token":
            # Gradio hands the httponly session cookie to any script that asks; the page never does.
            return await _json(send, 404, {"detail": "Not Found"})
        hashes = set(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", []))
        match = _HASH_IN_PATH.match(scope["path"])
        if match:
            hashes.add(match.group(1))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["method"] == "POST" and headers.get("content-type", "").startswith("application/json"):
            body, receive = await _buffer_body(receive)
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("session_hash"), str):
                hashes.add(payload["session_hash"])
        if not hashes:
            return await self.app(scope, receive, send)
        user = user_for_token(self.engine, request_token(headers))
        if user is None:
            return await _json(send, 401, {"detail": "sign in first"})
        for page in hashes:
            owner = self.owners.setdefault(page, user)
            self.owners.move_to_end(page)
            if owner != user:
                client = (scope.get("client") or ("?",))[0]
                log.warning("refused another user's page: user=%r owner=%r address=%s path=%s",
                            user, owner, client, scope["path"])
                return await _json(send, 403, {"detail": "this page belongs to another sign-in"})
        while len(self.owners) > MAX_BOUND_PAGES:
            self.owners.popitem(last=False)
        return await self.app(scope, receive, send)


async def _buffer_body(receive):
    """Read the whole request body, and a ``receive`` that replays it to the app."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def client_address(request) -> str:
    """The client's address (uvicorn has already applied ``X-Forwarded-For`` from a trusted proxy)."""
    return request.client.host if request.client is not None else "unknown"


def build_server(ctx, demo):
    """The FastAPI app ``lwz serve`` runs: sign-in routes, the vote route, then Gradio at ``/``."""
    import anyio
    import gradio as gr
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, RedirectResponse

    import webapp.auth as rules
    from storage.engine import write_scope
    from storage.sessions import purge_sessions
    from webapp.auth import SigninRefused, SigninThrottled
    from webapp.vote_api import add_vote_route

    engine, auth = ctx.engine, ctx.settings.auth
    if auth:
        with write_scope(engine) as session:  # sessions that ended a day ago or more are forgotten
            purge_sessions(session)
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    limiter: list = []

    if auth:
        @server.post("/login")
        @server.post("/login/")
        async def login(request: Request):
            form = await request.form()
            name, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
            if not limiter:
                limiter.append(anyio.CapacityLimiter(PASSWORD_CHECKS_AT_ONCE))
            try:
                token = await anyio.to_thread.run_sync(
                    lambda: rules.sign_in(engine, name=name, password=password, address=client_address(request)),
                    limiter=limiter[0])
            except SigninThrottled as exc:
                return JSONResponse({"detail": str(exc)}, status_code=429,
                                    headers={"Retry-After": str(exc.retry_after)})
            except SigninRefused as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
            response = JSONResponse({"success": True})
            secure, plain = COOKIE_NAMES
            response.set_cookie(secure, token, httponly=True, samesite="lax", secure=True)
            response.set_cookie(plain, token, httponly=True, samesite="lax")
            return response

        @server.get("/logout")
        async def logout(request: Request):
            token = request_token(request.headers)
            name = await anyio.to_thread.run_sync(lambda: rules.sign_out(engine, token))
            if name is not None:
                log.info("signed out: name=%r address=%s", name, client_address(request))
            response = RedirectResponse(url="./", status_code=302)
            for cookie in COOKIE_NAMES:
                response.delete_cookie(cookie, path="/")
            return response

    server.add_middleware(PageOwnership, engine=engine, auth=auth)
    from webapp.write_tab import DownloadOwnership  # a Write tab download goes to its owner only

    server.add_middleware(DownloadOwnership, ctx=ctx)
    add_vote_route(server, ctx)  # the outermost: the arena's JSON routes skip the layers above
    gr.mount_gradio_app(server, demo, path="/", auth=_never if auth else None,
                        auth_message=AUTH_MESSAGE if auth else None, show_error=True)
    gradio_app = next(route.app for route in server.routes if getattr(route, "path", None) == ""
                      and hasattr(route, "app") and hasattr(route.app, "tokens"))
    gradio_app.cookie_id = COOKIE_ID
    gradio_app.tokens = DatabaseTokens(engine)
    return server


def _never(name: str, password: str) -> bool:
    """Gradio's own login route is shadowed by :func:`build_server`'s; this only turns the sign-in form on."""
    return False
