"""The HTTP vocabulary every part of the web layer shares: cookies and tokens, the user behind a
request, origins, bodies, JSON in and out. A leaf: it imports nothing of ``webapp`` but
:mod:`webapp.auth`, so the middlewares, the sign-in routes and the vote route all ask it and none
of them asks another.

Everything works on raw ASGI pieces (``scope``, ``receive``, ``send``), because the app's
security layers are ASGI middlewares in front of Gradio, and the arena's hot path skips the
framework's request objects.
"""

from __future__ import annotations

import contextvars
import json
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from core.errors import UserError
from webapp.auth import session_user_name

COOKIE_ID = "lwz"
"""Gradio names its cookies ``access-token-{cookie_id}``; the same name on every process."""
COOKIE_NAMES = (f"access-token-{COOKIE_ID}", f"access-token-unsecure-{COOKIE_ID}")
MAX_JSON_DEPTH = 64
"""Deeper arrays or objects are refused: no request of the app nests more than a few levels, and
Python's parser would otherwise run into its recursion limit (a 2 KB body of ``[`` did)."""
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_resolved: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar("lwz_token_user",
                                                                                          default=None)
_refusal: contextvars.ContextVar[list | None] = contextvars.ContextVar("lwz_refusal", default=None)


class BadRequest(UserError):
    """A request body the app cannot take (HTTP 400); the message is one line for the caller."""


def headers_of(scope) -> dict[str, str]:
    """A request's headers by lower-case name (the last one wins for a repeated header)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


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


def client_address(scope) -> str:
    """The client's address (uvicorn has already applied ``X-Forwarded-For`` from a trusted proxy).

    Takes an ASGI scope or a Starlette request.
    """
    client = scope.get("client") if isinstance(scope, dict) else getattr(scope, "client", None)
    return client[0] if client else "unknown"


def is_https(scope) -> bool:
    """Whether the browser reached the app over TLS (uvicorn applies ``X-Forwarded-Proto`` from a trusted proxy)."""
    scheme = scope.get("scheme") if isinstance(scope, dict) else getattr(getattr(scope, "url", None), "scheme", None)
    return scheme in ("https", "wss")


def own_origin(scope) -> str | None:
    """The origin the browser used to reach the app: scheme and the ``Host`` header, lower case."""
    host = headers_of(scope).get("host")
    if not host:
        return None
    return origin_of(f"{'https' if is_https(scope) else 'http'}://{host.strip()}")


def origin_of(value: str) -> str | None:
    """``scheme://host[:port]`` of an Origin or Referer header, lower case; None for ``null`` or junk.

    A default port is dropped, as browsers drop it from Origin.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def host_of(origin: str | None) -> str | None:
    """The ``host[:port]`` part of an origin from :func:`origin_of` (a default port already dropped)."""
    return origin.split("://", 1)[1] if origin else None


def claimed_origin(headers: dict[str, str]) -> tuple[bool, str | None]:
    """``(sent, origin)``: the origin a browser says a request comes from (Origin, else Referer).

    ``sent`` is False when the request carries neither (not a browser, or one that hides both);
    ``origin`` is None when it carries one that names no origin (``Origin: null``, junk).
    """
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is not None:
            return True, origin_of(value)
    return False, None


async def read_body(receive, *, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` bytes (the rest is left unread)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replaying(receive, body: bytes):
    """A ``receive`` that hands ``body`` to the app once, then listens to the client again (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body`` (an empty body is ``None``); BadRequest for what the app cannot take.

    Refused: text that is not JSON, nesting deeper than :data:`MAX_JSON_DEPTH`, and a lone UTF-16
    surrogate (``"\\ud800"``), which JSON can spell but no database can store as text.
    """
    if not body:
        return None
    if _depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if _has_lone_surrogate(value):
        raise BadRequest("the request holds a lone surrogate (\\ud800-\\udfff), which is not text; remove it")
    return value


def _depth(body: bytes) -> int:
    """How deep brackets nest in ``body``, strings skipped (a linear scan, before any parse)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def is_json_type(content_type: str) -> bool:
    """Whether a Content-Type names JSON, whatever its case and parameters (``application/JSON; charset=x``)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


async def send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    """Answer ``payload`` as JSON with ``status``."""
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def watch_refusals() -> list:
    """Start collecting, for the current request, the HTTP statuses its handlers ask for (see :func:`refuse_with`)."""
    noted: list = []
    _refusal.set(noted)
    return noted


def refuse_with(status: int) -> None:
    """Ask that the request being handled be answered with ``status`` should it fail.

    Gradio answers every failed direct call with 500; a handler that refuses a caller (a role that
    may not act) says so here, and :class:`webapp.middleware.RefusalStatus` answers 403 instead.
    Outside a watched request this does nothing.
    """
    noted = _refusal.get()
    if noted is not None:
        noted.append(status)
