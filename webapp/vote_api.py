"""The fast vote route: one ``POST /api/arena/vote`` that stores a vote and answers with the reveal.

For scripts and clients other than the page (the Arena tab sends its vote as one Gradio POST
outside the queue): one plain request on the same app, with the same identity (the sign-in
cookie, checked against the sessions table) and the same checks, because it calls the same
service as the tab: assignment, once per battle, too-fast flag and reason cap all live in
:func:`arena.rules.cast_vote`.

Request (``Content-Type: application/json`` in any case or with parameters, which a cross-site form
cannot send; a request from another origin is refused before it gets here, see
:class:`webapp.middleware.OriginCheck`)::

    {"battle_id": 12, "winner": "left|right|tie|both_bad",
     "criteria": {"coherence": "left", ...}, "reason": "...", "reading": {...}}

``reading`` is the page's reading report (see :mod:`arena.rules`), optional as in the tab.

``POST /api/arena/next`` (body ``{}``) answers the battle to read, as Next battle does.

Answers: 200 with ``{"vote_id", "battle_id", "winner", "created", "flagged", "counts", "reveal",
"message"}``; 400 with ``{"error": one line}`` for a vote the rules refuse; 401 without a live
sign-in; 403 for a role that may not vote; 405 for another method; 413 for a body over
:data:`MAX_BODY_BYTES`; 415 for a body that is not JSON; 400 for JSON nested too deep or holding a
lone surrogate (:func:`webapp.http.parse_json`).

The vote is stored, and the reveal read, in one transaction (see :func:`arena.service.vote_and_reveal`).
"""

from __future__ import annotations

from typing import Any

from core.errors import DatabaseUnavailable, UserError
from webapp.http import headers_of, is_json_type, parse_json, read_body, request_token, send_json

MAX_ID = 2**63 - 1
VOTE_PATH = "/api/arena/vote"
NEXT_PATH = "/api/arena/next"


def parse_vote(payload: Any) -> dict[str, Any]:
    """The vote's fields, with their types checked; UserError says what is wrong, in one line."""
    if not isinstance(payload, dict):
        raise UserError("send a JSON object with battle_id and winner")
    battle = payload.get("battle_id")
    if isinstance(battle, bool) or not isinstance(battle, int) or not 0 < battle <= MAX_ID:
        raise UserError("no battle loaded: battle_id must be the id of the battle you were shown")
    winner = payload.get("winner")
    if not isinstance(winner, str):
        raise UserError("winner must be one of left, right, tie, both_bad")
    criteria = payload.get("criteria") or {}
    if not isinstance(criteria, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                 for k, v in criteria.items()):
        raise UserError("criteria must map a criterion to left, right or tie")
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise UserError("reason must be text")
    reading = payload.get("reading")
    if reading is not None and not isinstance(reading, (dict, str)):
        raise UserError("reading must be the page's reading report (an object)")
    for text in (winner, reason or "", *criteria, *(v or "" for v in criteria.values())):
        if "\x00" in text:
            raise UserError("the vote holds a NUL character; remove it")
    return {"battle_id": battle, "winner": winner, "criteria": criteria, "reason": reason, "reading": reading}


def vote_and_reveal(ctx, *, who, payload: Any) -> dict[str, Any]:
    """Check what ``who`` (an Identity) sends, store the vote, and read back the reveal (blocking)."""
    from arena.service import vote_and_reveal as store_and_reveal

    vote = parse_vote(payload)
    ack = store_and_reveal(ctx.engine, annotator_id=who.user_id, settings=ctx.arena, **vote)
    if ack["created"]:
        message = "Vote stored."
    else:
        message = "You had already voted on this battle; your first vote stands."
    if ack["flagged"]:
        message += " It was cast faster than the texts can be read, so it is flagged."
    return {**ack, "message": message}


def next_for(ctx, *, who) -> dict[str, Any]:
    """``who``'s open battle or a new one (``{"battle": view}``), or ``{"message": text}``; never a name."""
    from arena.service import next_battle

    return next_battle(ctx.engine, annotator_id=who.user_id, settings=ctx.arena)


class NotSignedIn(UserError):
    """No live session behind the request (HTTP 401)."""


def caller(ctx, token: str | None):
    """The identity behind a request's token, if it may vote. With sign-in off, the local user.

    Raises NotSignedIn without a live session, PermissionDenied for a role that may not vote.
    """
    from webapp.auth import PermissionDenied, session_identity

    who = session_identity(ctx.engine, token) if ctx.settings.auth else ctx.identify(None)
    if who is None:
        raise NotSignedIn("sign in first")
    if not who.can("vote"):
        raise PermissionDenied(f"a {who.role} may not vote; ask an admin for another role")
    return who


MAX_BODY_BYTES = 64 * 1024
"""Far above the largest vote (a 5,000-character reason and a reading report); more is refused unread."""


def answer_request(ctx, work, *, content_type: str, body: bytes, token: str | None) -> tuple[int, dict]:
    """``(status, JSON body)`` for one request: parse, identify, ``work(identity, payload)`` (blocking).

    Every refusal is one line under ``"error"``: 401 without a live session, 403 for a role that
    may not vote, 400 for what the rules refuse, 415 for a body that is not JSON, 503 when the
    database fails (its details go to the log only).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from webapp.auth import PermissionDenied, log

    if not is_json_type(content_type):
        return 415, {"error": "send the request as application/json"}
    try:
        who = caller(ctx, token)
        return 200, work(who, parse_json(body))  # BadRequest is a UserError: 400
    except NotSignedIn as exc:
        return 401, {"error": str(exc)}
    except PermissionDenied as exc:
        return 403, {"error": str(exc)}
    except DatabaseUnavailable as exc:
        return 503, {"error": str(exc)}
    except UserError as exc:
        return 400, {"error": str(exc)}
    except SQLAlchemyError as exc:
        log.warning("arena request refused by the database: %s", type(exc).__name__)
        return 503, {"error": "the database refused this request; try again"}


class ArenaRoutes:
    """ASGI middleware answering ``POST /api/arena/vote`` and ``POST /api/arena/next`` itself.

    They are the arena's hot path, so they skip the framework's routing, request objects and
    dependency machinery: read the body, hop once to a worker thread for the identity check and
    the work, answer JSON. Every other request goes on to the app.
    """

    def __init__(self, app, *, ctx):
        self.app, self.ctx = app, ctx
        self.routes = {
            VOTE_PATH: lambda who, payload: vote_and_reveal(ctx, who=who, payload=payload),
            NEXT_PATH: lambda who, _payload: next_for(ctx, who=who),
        }
        self.limiter = None  # made on the first request, inside the server's event loop

    async def __call__(self, scope, receive, send):
        work = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if work is None:
            return await self.app(scope, receive, send)
        import anyio

        if scope["method"] != "POST":
            return await send_json(send, 405, {"error": "use POST"}, headers=[(b"allow", b"POST")])
        headers = headers_of(scope)
        body = await read_body(receive, limit=MAX_BODY_BYTES)
        if body is None:
            return await send_json(send, 413, {"error": f"the request is larger than {MAX_BODY_BYTES:,} bytes"})
        content_type, token = headers.get("content-type", ""), request_token(headers)
        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(arena_workers(self.ctx.engine))
        status, payload = await anyio.to_thread.run_sync(
            lambda: answer_request(self.ctx, work, content_type=content_type, body=body, token=token),
            limiter=self.limiter)
        await send_json(send, status, payload)


def arena_workers(engine) -> int:
    """How many arena requests one process works on at once; the others wait in arrival order.

    On SQLite one: every vote and every assignment writes, and writes take turns anyway, so more
    threads only contend for the lock and the interpreter and serve late arrivals out of order (which
    is what set the p99 under load). On PostgreSQL requests wait on the database's round trips, so a
    few overlap.
    """
    return 1 if engine.dialect.name == "sqlite" else 4

