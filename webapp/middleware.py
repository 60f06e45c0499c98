"""The ASGI layers in front of Gradio, each one rule, all of them here.

:func:`webapp.server.build_server` stacks them, outermost first:

- :class:`OriginCheck`: a state-changing request (POST, PUT, PATCH, DELETE) whose browser names
  another origin (``Origin``, else ``Referer``) is refused, on every route: Gradio's
  ``/gradio_api/*``, ``/login``, ``/logout``, the arena's JSON routes. A request with neither
  header is not a browser's cross-site request (browsers send ``Origin`` with every cross-origin
  POST) and passes; ``Origin: null`` does not.
- :class:`JsonBodies`: a POST to Gradio's API is read whole (size-limited) and parsed once with
  :func:`webapp.http.parse_json`, whatever its Content-Type says, so what Gradio will parse is what
  the next layer checks; a body no route can take (not JSON, nested too deep, a lone surrogate)
  gets a one-line 400 before any handler runs.
- :class:`PageOwnership`: a Gradio ``session_hash`` belongs to the first signed-in user who names it.
- :class:`DownloadOwnership`: a Write tab download is served to the user who wrote it only.
- :class:`RefusalStatus`: a Gradio direct call that a handler refused for the caller's role
  answers 403, not Gradio's 500 for every failure.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qs

from webapp.downloads import download_owner
from webapp.http import (
    UNSAFE_METHODS, BadRequest, claimed_origin, client_address, headers_of, host_of, own_origin, parse_json, read_body,
    replaying, request_token, send_json, user_for_token, watch_refusals,
)

log = logging.getLogger("lwz.auth")

MAX_BOUND_PAGES = 200_000
MAX_GRADIO_BODY_BYTES = 8 * 1024 * 1024
"""Far above any event of the app (the longest request a writer may type, a reading report)."""
PARSED = "lwz.json"
"""Where :class:`JsonBodies` leaves the parsed body in the request's scope."""
_HASH_IN_PATH = re.compile(r"^/gradio_api/(?:heartbeat|stream)/([^/]+)")
_RAW_BODY_PATHS = ("/gradio_api/upload",)
"""Gradio routes whose POST body is not JSON (a multipart file upload)."""


class OriginCheck:
    """Refuse state-changing requests that a browser sends from another origin (HTTP 403).

    The app's own origin is the ``Host`` the browser used (a cross-site page cannot choose the Host
    its victim's browser sends). The scheme is not compared: behind a TLS proxy that uvicorn does not
    trust with ``X-Forwarded-Proto`` the app sees http where the browser says https, and one host and
    port serve one scheme. ``trusted`` adds origins for deployments whose proxy rewrites the Host
    (``lwz serve --trusted-origin``).
    """

    def __init__(self, app, *, trusted: frozenset[str] = frozenset()):
        self.app, self.trusted = app, trusted

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            return await self.app(scope, receive, send)
        sent, origin = claimed_origin(headers_of(scope))
        if sent and (origin is None or (host_of(origin) != host_of(own_origin(scope)) and origin not in self.trusted)):
            log.warning("refused a cross-site request: origin=%r address=%s path=%s",
                        origin, client_address(scope), scope["path"])
            return await send_json(send, 403, {"detail": "cross-site request refused: this page is not the app's own"})
        return await self.app(scope, receive, send)


class JsonBodies:
    """Read and parse the body of every POST to Gradio's API once; refuse what no route can take."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/gradio_api/")
                or scope["path"].rstrip("/") in _RAW_BODY_PATHS):
            return await self.app(scope, receive, send)
        body = await read_body(receive, limit=MAX_GRADIO_BODY_BYTES)
        if body is None:
            return await send_json(send, 413, {"detail": f"the request is larger than {MAX_GRADIO_BODY_BYTES:,} bytes"})
        try:
            scope[PARSED] = parse_json(body)
        except BadRequest as exc:
            return await send_json(send, 400, {"detail": str(exc)})
        return await self.app(scope, replaying(receive, body), send)


class PageOwnership:
    """A ``session_hash`` belongs to the first signed-in user who names it (with sign-in on).

    Gradio keys a page's events and event stream by a client-chosen ``session_hash``. This looks
    for it wherever Gradio's routes take it (query string, path, the body :class:`JsonBodies`
    parsed, whatever its Content-Type) and answers 401 without a signed-in user and 403 for a hash
    bound to someone else. The binding lives in the process that holds that page's queue, which is
    the only one that could leak it. Gradio's ``/gradio_api/token`` (which returns the httponly
    session cookie to any script) is closed.
    """

    def __init__(self, app, *, engine, auth: bool):
        self.app, self.engine, self.auth = app, engine, auth
        self.owners: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.auth or not scope["path"].startswith("/gradio_api/"):
            return await self.app(scope, receive, send)
        if scope["path"].rstrip("/") == "/gradio_api/token":
            return await send_json(send, 404, {"detail": "Not Found"})
        hashes = set(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", []))
        match = _HASH_IN_PATH.match(scope["path"])
        if match:
            hashes.add(match.group(1))
        payload = scope.get(PARSED)
        if isinstance(payload, dict) and "session_hash" in payload:
            if not isinstance(payload["session_hash"], (str, type(None))):
                return await send_json(send, 400, {"detail": "session_hash must be text"})
            if payload["session_hash"] is not None:
                hashes.add(payload["session_hash"])
        if not hashes:
            return await self.app(scope, receive, send)
        user = user_for_token(self.engine, request_token(headers_of(scope)))
        if user is None:
            return await send_json(send, 401, {"detail": "sign in first"})
        for page in hashes:
            owner = self.owners.setdefault(page, user)
            self.owners.move_to_end(page)
            if owner != user:
                log.warning("refused another user's page: user=%r owner=%r address=%s path=%s",
                            user, owner, client_address(scope), scope["path"])
                return await send_json(send, 403, {"detail": "this page belongs to another sign-in"})
        while len(self.owners) > MAX_BOUND_PAGES:
            self.owners.popitem(last=False)
        return await self.app(scope, receive, send)


class DownloadOwnership:
    """With sign-in on, a Write tab download is served to the user who wrote it only (403 otherwise)."""

    def __init__(self, app, *, ctx):
        self.app, self.ctx = app, ctx

    async def __call__(self, scope, receive, send):
        folder = self.ctx.downloads
        if scope["type"] != "http" or not self.ctx.settings.auth or folder is None:
            return await self.app(scope, receive, send)
        owner = download_owner(scope["path"], Path(folder))
        if owner is None:
            return await self.app(scope, receive, send)
        from storage.engine import session_scope
        from storage.users import get_user

        name = user_for_token(self.ctx.engine, request_token(headers_of(scope)))
        user_id = None
        if name is not None:
            with session_scope(self.ctx.engine) as session:
                user = get_user(session, name=name)
                user_id = user.id if user is not None else None
        if user_id is None or user_id != owner:
            log.warning("refused a download: user=%r path=%s", name, scope["path"])
            return await send_json(send, 403, {"detail": "this file belongs to another user"})
        return await self.app(scope, receive, send)


class RefusalStatus:
    """A failed Gradio call whose handler refused the caller (:func:`webapp.http.refuse_with`) answers
    that status (403) instead of Gradio's 500 for every failure; the body stays Gradio's one line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/gradio_api/"):
            return await self.app(scope, receive, send)
        noted = watch_refusals()

        async def answer(message):
            if message["type"] == "http.response.start" and message["status"] == 500 and noted:
                message = {**message, "status": noted[-1]}
            await send(message)

        return await self.app(scope, receive, answer)
