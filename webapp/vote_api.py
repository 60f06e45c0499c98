"""The fast vote route: one ``POST /api/arena/vote`` that stores a vote and answers with the reveal.

A vote through the Arena tab costs queued Gradio events; this route is one plain request on the
same app, with the same identity (the sign-in cookie, checked against the sessions table) and
the same checks, because it calls the same service as the tab: assignment, once per battle,
too-fast flag and reason cap all live in :func:`arena.rules.cast_vote`.

Request (``Content-Type: application/json``, which a cross-site form cannot send)::

    {"battle_id": 12, "winner": "left|right|tie|both_bad",
     "criteria": {"coherence": "left", ...}, "reason": "...", "reading": {...}}

``reading`` is the page's reading report (see :mod:`arena.rules`), optional as in the tab.

``POST /api/arena/next`` (body ``{}``) answers the battle to read, as Next battle does.

Answers: 200 with ``{"vote_id", "battle_id", "winner", "created", "flagged", "counts", "reveal",
"message"}``; 400 with ``{"error": one line}`` for a vote the rules refuse; 401 without a live
sign-in; 403 for a role that may not vote; 415 for a body that is not JSON.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' `Request` annotations at run time.

from typing import Any

from core.errors import DatabaseUnavailable, UserError

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
    from arena.service import reveal_battle, submit_vote
    from webapp.arena_tab import arena_settings

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


def next_for(ctx, *, who) -> dict[str, Any]:
    """``who``'s open battle or a new one (``{"battle": view}``), or ``{"message": text}``; never a name."""
    from arena.service import next_battle
    from webapp.arena_tab import arena_settings

    return next_battle(ctx.engine, annotator_id=who.user_id, settings=arena_settings(ctx))


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


def add_vote_route(server, ctx) -> None:
    """Add ``POST /api/arena/vote`` (and ``POST /api/arena/next``, the battle to read) to ``server``."""
    import anyio
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import SQLAlchemyError

    from webapp.auth import PermissionDenied, log
    from webapp.server import request_token

    async def answer(request: Request, work):
        """Run ``work(identity, payload)`` for a JSON request, in one worker thread with the identity check."""
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send the request as application/json"}, status_code=415)
        try:
            payload = await request.json()
        except ValueError:
            payload = ValueError
        token = request_token(request.headers)

        def checked():
            who = caller(ctx, token)
            if payload is ValueError:
                raise UserError("send a JSON object with battle_id and winner")
            return work(who, payload)

        try:
            result = await anyio.to_thread.run_sync(checked)
        except NotSignedIn as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        except PermissionDenied as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        except DatabaseUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SQLAlchemyError as exc:
            log.warning("vote refused by the database: %s", type(exc).__name__)
            return JSONResponse({"error": "the database refused this request; try again"}, status_code=503)
        return JSONResponse(result)

    @server.post(VOTE_PATH)
    async def vote(request: Request):
        return await answer(request, lambda who, payload: vote_and_reveal(ctx, who=who, payload=payload))

    @server.post(NEXT_PATH)
    async def next_one(request: Request):
        return await answer(request, lambda who, _payload: next_for(ctx, who=who))
