"""The fast vote route: one ``POST /api/arena/vote`` that stores a vote and answers with the reveal.

A vote through the Arena tab costs queued Gradio events; this route is one plain request on the
same app, with the same identity (the sign-in cookie, checked against the sessions table) and
the same checks, because it calls the same service as the tab: assignment, once per battle,
too-fast flag and reason cap all live in :func:`arena.rules.cast_vote`.

Request (``Content-Type: application/json``, which a cross-site form cannot send)::

    {"battle_id": 12, "winner": "left|right|tie|both_bad",
     "criteria": {"coherence": "left", ...}, "reason": "..."}

Answers: 200 with ``{"vote_id", "battle_id", "winner", "created", "flagged", "counts", "reveal",
"message"}``; 400 with ``{"error": one line}`` for a vote the rules refuse; 401 without a live
sign-in; 403 for a role that may not vote; 415 for a body that is not JSON.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' `Request` annotations at run time.

from typing import Any

from core.errors import DatabaseUnavailable, UserError

MAX_ID = 2**63 - 1
VOTE_PATH = "/api/arena/vote"


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
    for text in (winner, reason or "", *criteria, *(v or "" for v in criteria.values())):
        if "\x00" in text:
            raise UserError("the vote holds a NUL character; remove it")
    return {"battle_id": battle, "winner": winner, "criteria": criteria, "reason": reason}


def vote_and_reveal(ctx, *, username: str | None, payload: Any) -> dict[str, Any]:
    """Check who asks and what they send, store the vote, and read back the reveal (blocking)."""
    from arena.service import reveal_battle, submit_vote
    from webapp.arena_tab import arena_settings

    who = ctx.require(_Caller(username), "vote")
    vote = parse_vote(payload)
    ack = submit_vote(ctx.engine, annotator_id=who.user_id, settings=arena_settings(ctx), **vote)
    shown = reveal_battle(ctx.engine, annotator_id=who.user_id, battle_id=ack["battle_id"])
    if ack["created"]:
        message = "Vote stored."
    else:
        message = "You had already voted on this battle; your first vote stands."
    if ack["flagged"]:
        message += " It was cast faster than the texts can be read, so it is flagged."
    return {**ack, "reveal": shown, "message": message}


class _Caller:
    """What ``ctx.require`` reads from a request: the signed-in user's name."""

    def __init__(self, username: str | None):
        self.username = username


def add_vote_route(server, ctx) -> None:
    """Add ``POST /api/arena/vote`` to the FastAPI app ``server``."""
    import anyio
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import SQLAlchemyError

    from webapp.auth import PermissionDenied, log
    from webapp.server import request_token, user_for_token

    @server.post(VOTE_PATH)
    async def vote(request: Request):
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send the vote as application/json"}, status_code=415)
        username = None
        if ctx.settings.auth:
            username = await anyio.to_thread.run_sync(
                lambda: user_for_token(ctx.engine, request_token(request.headers)))
            if username is None:
                return JSONResponse({"error": "sign in first"}, status_code=401)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "send a JSON object with battle_id and winner"}, status_code=400)
        try:
            answer = await anyio.to_thread.run_sync(
                lambda: vote_and_reveal(ctx, username=username, payload=payload))
        except PermissionDenied as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        except DatabaseUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SQLAlchemyError as exc:
            log.warning("vote refused by the database: %s", type(exc).__name__)
            return JSONResponse({"error": "the database refused this vote; try again"}, status_code=503)
        return JSONResponse(answer)
