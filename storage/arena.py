"""The arena's table queries: the pool, battle candidates, open assignments, the blind view, the reveal.

Only queries live here; the rules that decide what a vote may be and who may cast it live in
:mod:`arena.rules`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from core.errors import UserError
from storage.models import Assignment, Battle, Generation, GenerationStatus, ModelEntry, Prompt, Vote
from storage.votes import create_battle, get_assignment, get_vote

def pool_entries(session: Session) -> list[tuple[int, int, str]]:
    """``(generation_id, prompt_id, model_name)`` of every generation that may enter a battle.

    Only generations sent to the pool (``in_pool``) whose status is ``complete`` and whose
    answer is non-empty: truncated, failed, interrupted and still-streaming rows never qualify.
    """
    rows = session.execute(
        sa.select(Generation.id, Generation.prompt_id, ModelEntry.name)
        .join(ModelEntry, ModelEntry.id == Generation.model_id)
        .where(Generation.in_pool.is_(True), Generation.status == GenerationStatus.complete, Generation.answer_words > 0)
        .order_by(Generation.id)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def unpaired_pool_count(session: Session) -> int:
    """How many pool generations appear in no battle yet (cheap check before forming battles)."""
    in_battle = sa.union(
        sa.select(Battle.left_generation_id.label("gid")).where(Battle.left_generation_id.is_not(None)),
        sa.select(Battle.right_generation_id.label("gid")).where(Battle.right_generation_id.is_not(None)),
    ).subquery()
    return session.execute(
        sa.select(sa.func.count(Generation.id)).where(
            Generation.in_pool.is_(True),
            Generation.status == GenerationStatus.complete,
            Generation.answer_words > 0,
            Generation.id.not_in(sa.select(in_battle.c.gid)),
        )
    ).scalar_one()


def battle_pairs(session: Session) -> list[tuple[int, int]]:
    """``(left_generation_id, right_generation_id)`` of every battle with both sides present."""
    rows = session.execute(
        sa.select(Battle.left_generation_id, Battle.right_generation_id).where(
            Battle.left_generation_id.is_not(None), Battle.right_generation_id.is_not(None)
        )
    ).all()
    return [(r[0], r[1]) for r in rows]


def create_battle_with_extra(
    session: Session, *, prompt_id: int, left_generation_id: int, right_generation_id: int,
    mode: str = "pool", extra: dict[str, Any] | None = None,
) -> Battle:
    """:func:`create_battle`, also storing ``extra`` (seed, ``names_model`` and the like)."""
    battle = create_battle(
        session, prompt_id=prompt_id, left_generation_id=left_generation_id,
        right_generation_id=right_generation_id, mode=mode,
    )
    battle.extra = dict(extra or {})
    session.add(battle)
    session.flush()
    return battle


_LEFT_GEN, _RIGHT_GEN = aliased(Generation, name="left_gen"), aliased(Generation, name="right_gen")
_LEFT_MODEL, _RIGHT_MODEL = aliased(ModelEntry, name="left_model"), aliased(ModelEntry, name="right_model")
_VOTE_COUNTS = sa.select(Vote.battle_id, sa.func.count(Vote.id).label("n")).group_by(Vote.battle_id).subquery("vc")
_CANDIDATES = (
    sa.select(
        Battle.id, _LEFT_MODEL.name, _RIGHT_MODEL.name, sa.func.coalesce(_VOTE_COUNTS.c.n, 0),
        _LEFT_GEN.author_id, _RIGHT_GEN.author_id,
    )
    .join(_LEFT_GEN, _LEFT_GEN.id == Battle.left_generation_id)
    .join(_RIGHT_GEN, _RIGHT_GEN.id == Battle.right_generation_id)
    .join(_LEFT_MODEL, _LEFT_MODEL.id == _LEFT_GEN.model_id)
    .join(_RIGHT_MODEL, _RIGHT_MODEL.id == _RIGHT_GEN.model_id)
    .outerjoin(_VOTE_COUNTS, _VOTE_COUNTS.c.battle_id == Battle.id)
    .where(_LEFT_GEN.status == GenerationStatus.complete, _RIGHT_GEN.status == GenerationStatus.complete)
    .order_by(Battle.id)
)
"""Built once: constructing aliased joins costs more CPU than running the query on a small pool."""


def battle_candidates(session: Session) -> list[dict[str, Any]]:
    """Every battle that can be shown: both generations present and complete.

    Each row: ``battle_id, model_left, model_right, votes, authors`` (author ids of the two
    generations, None left out). Model names are for pair selection on the server only.
    """
    rows = session.execute(_CANDIDATES).all()
    return [
        {"battle_id": r[0], "model_left": r[1], "model_right": r[2], "votes": int(r[3]),
         "authors": frozenset(a for a in (r[4], r[5]) if a is not None)}
        for r in rows
    ]


def given_battle_ids(session: Session, *, annotator_id: int) -> set[int]:
    """Battles ever assigned to this annotator (voted, skipped or open)."""
    return set(session.exec(select(Assignment.battle_id).where(Assignment.annotator_id == annotator_id)))


_VOTED = aliased(Vote, name="voted")
_OPEN_ASSIGNMENT = (
    sa.select(Assignment)
    .outerjoin(_VOTED, sa.and_(_VOTED.battle_id == Assignment.battle_id,
                               _VOTED.annotator_id == Assignment.annotator_id))
    .where(Assignment.annotator_id == sa.bindparam("annotator_id"), Assignment.skipped.is_(False),
           _VOTED.id.is_(None))
    .order_by(Assignment.assigned_at.desc(), Assignment.id.desc())
    .limit(1)
)


def open_assignment(session: Session, *, annotator_id: int) -> Assignment | None:
    """The annotator's latest assignment that is neither voted nor skipped (its battle may have lost a side).

    This is the per-user arena state: it lives in the database, keyed by the user, so a reload,
    a second tab or a forged session hash all see the same battle.
    """
    return session.execute(_OPEN_ASSIGNMENT, {"annotator_id": annotator_id}).scalars().first()


def skip_assignment(session: Session, *, battle_id: int, annotator_id: int) -> bool:
    """Mark an open assignment skipped. False when there is none (or it was already voted)."""
    assignment = get_assignment(session, battle_id=battle_id, annotator_id=annotator_id)
    if assignment is None or get_vote(session, battle_id=battle_id, annotator_id=annotator_id) is not None:
        return False
    assignment.skipped = True
    session.add(assignment)
    session.flush()
    return True


def battle_view(session: Session, *, battle_id: int) -> dict[str, Any] | None:
    """What an annotator may see before voting: the request and both texts, with no model names.

    None when the battle is gone or one of its generations was deleted (such a battle is skipped).
    """
    battle = session.get(Battle, battle_id)
    if battle is None or battle.left_generation_id is None or battle.right_generation_id is None:
        return None
    left = session.get(Generation, battle.left_generation_id)
    right = session.get(Generation, battle.right_generation_id)
    prompt = session.get(Prompt, battle.prompt_id)
    if left is None or right is None or prompt is None:
        return None
    return {
        "battle_id": battle.id,
        "prompt": prompt.text,
        "target_words": prompt.target_words,
        "left": {"think": left.think, "answer": left.answer},
        "right": {"think": right.think, "answer": right.answer},
    }


_REVEAL = (
    sa.select(Vote.winner, Vote.flags, _LEFT_MODEL.name, _LEFT_GEN.answer_words,
              _RIGHT_MODEL.name, _RIGHT_GEN.answer_words)
    .join(Battle, Battle.id == Vote.battle_id)
    .outerjoin(_LEFT_GEN, _LEFT_GEN.id == Battle.left_generation_id)
    .outerjoin(_RIGHT_GEN, _RIGHT_GEN.id == Battle.right_generation_id)
    .outerjoin(_LEFT_MODEL, _LEFT_MODEL.id == _LEFT_GEN.model_id)
    .outerjoin(_RIGHT_MODEL, _RIGHT_MODEL.id == _RIGHT_GEN.model_id)
    .where(Vote.battle_id == sa.bindparam("battle_id"), Vote.annotator_id == sa.bindparam("annotator_id"))
)


def battle_reveal(session: Session, *, battle_id: int, annotator_id: int) -> dict[str, Any]:
    """Model names and answer word counts of both sides, only once this annotator's vote is stored."""
    row = session.execute(_REVEAL, {"battle_id": battle_id, "annotator_id": annotator_id}).first()
    if row is None:
        raise UserError("vote first: the models are revealed only after your vote is stored")
    winner, flags, left_model, left_words, right_model, right_words = row
    return {
        "battle_id": battle_id, "winner": winner, "flags": list(flags or []),
        "left": {"model": left_model or "(deleted)", "words": left_words or 0},
        "right": {"model": right_model or "(deleted)", "words": right_words or 0},
    }


def annotator_counts(session: Session, *, annotator_id: int) -> dict[str, int]:
    """The annotator's own tallies: votes, flagged votes and skips (one round trip)."""
    mine = Vote.annotator_id == annotator_id
    votes, flagged, skipped = session.execute(sa.select(
        sa.select(sa.func.count(Vote.id)).where(mine).scalar_subquery(),
        sa.select(sa.func.count(Vote.id)).where(mine, Vote.flagged.is_(True)).scalar_subquery(),
        sa.select(sa.func.count(Assignment.id))
        .where(Assignment.annotator_id == annotator_id, Assignment.skipped.is_(True)).scalar_subquery(),
    )).one()
    return {"votes": int(votes), "flagged": int(flagged), "skipped": int(skipped)}


def list_battles(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """Battles with their models, vote counts and marks, newest first (for researchers and the CLI)."""
    rows = battle_candidates(session)
    extras = dict(session.execute(sa.select(Battle.id, Battle.extra)).all())
    modes = dict(session.execute(sa.select(Battle.id, Battle.mode)).all())
    out = [
        {"battle_id": r["battle_id"], "model_left": r["model_left"], "model_right": r["model_right"],
         "votes": r["votes"], "mode": modes.get(r["battle_id"]),
         "names_model": bool((extras.get(r["battle_id"]) or {}).get("names_model"))}
        for r in rows
    ]
    return sorted(out, key=lambda r: -r["battle_id"])[:limit]
