"""The arena's table queries: the pool, battle candidates, open assignments, the blind view, the reveal.

Only queries live here; the rules that decide what a vote may be and who may cast it live in
:mod:`arena.rules`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.errors import UserError
from storage.models import Assignment, Battle, Generation, GenerationStatus, ModelEntry, Prompt, Vote, utcnow
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


# The arena's hot path (Next battle, vote, reveal) runs these as Core statements over the tables,
# built once: ORM objects and per-call statement building cost more CPU than the queries themselves.
_A, _B, _G, _P, _V, _M = (Assignment.__table__, Battle.__table__, Generation.__table__, Prompt.__table__,
                          Vote.__table__, ModelEntry.__table__)
_LG, _RG, _LM, _RM = _G.alias("left_gen"), _G.alias("right_gen"), _M.alias("left_model"), _M.alias("right_model")
_VOTE_COUNTS = sa.select(_V.c.battle_id, sa.func.count(_V.c.id).label("n")).group_by(_V.c.battle_id).subquery("vc")
_CANDIDATES = (
    sa.select(_B.c.id, _LM.c.name, _RM.c.name, sa.func.coalesce(_VOTE_COUNTS.c.n, 0), _LG.c.author_id,
              _RG.c.author_id)
    .join(_LG, _LG.c.id == _B.c.left_generation_id)
    .join(_RG, _RG.c.id == _B.c.right_generation_id)
    .join(_LM, _LM.c.id == _LG.c.model_id)
    .join(_RM, _RM.c.id == _RG.c.model_id)
    .outerjoin(_VOTE_COUNTS, _VOTE_COUNTS.c.battle_id == _B.c.id)
    .where(_LG.c.status == GenerationStatus.complete, _RG.c.status == GenerationStatus.complete)
    .order_by(_B.c.id)
)
_LAST_BATTLE = sa.select(sa.func.max(_B.c.id))
_GIVEN = sa.select(_A.c.battle_id).where(_A.c.annotator_id == sa.bindparam("annotator_id"))
_OPEN_BATTLE = (
    sa.select(_A.c.battle_id)
    .where(_A.c.annotator_id == sa.bindparam("annotator_id"), _A.c.skipped.is_(False),
           ~sa.exists().where(_V.c.battle_id == _A.c.battle_id, _V.c.annotator_id == _A.c.annotator_id))
    .order_by(_A.c.assigned_at.desc(), _A.c.id.desc())
    .limit(1)
)
_VIEW = (
    sa.select(_B.c.id, _P.c.text, _P.c.target_words, _LG.c.think, _LG.c.answer, _RG.c.think, _RG.c.answer)
    .join(_P, _P.c.id == _B.c.prompt_id)
    .join(_LG, _LG.c.id == _B.c.left_generation_id)
    .join(_RG, _RG.c.id == _B.c.right_generation_id)
    .where(_B.c.id == sa.bindparam("battle_id"))
)
_ASSIGN = sa.insert(_A)
_VOTE_CONTEXT = (
    sa.select(_A.c.assigned_at, _A.c.skipped, _B.c.left_generation_id, _B.c.right_generation_id,
              _LG.c.answer_words, _RG.c.answer_words, _V.c.id, _V.c.winner, _V.c.flagged)
    .select_from(_A)
    .outerjoin(_B, _B.c.id == _A.c.battle_id)
    .outerjoin(_LG, _LG.c.id == _B.c.left_generation_id)
    .outerjoin(_RG, _RG.c.id == _B.c.right_generation_id)
    .outerjoin(_V, sa.and_(_V.c.battle_id == _A.c.battle_id, _V.c.annotator_id == _A.c.annotator_id))
    .where(_A.c.battle_id == sa.bindparam("battle_id"), _A.c.annotator_id == sa.bindparam("annotator_id"))
)
_FIRST_VOTE = sa.select(_V.c.id, _V.c.winner, _V.c.flagged).where(
    _V.c.battle_id == sa.bindparam("battle_id"), _V.c.annotator_id == sa.bindparam("annotator_id"))
_INSERT_VOTE: dict[str, Any] = {}
_REVEAL = (
    sa.select(_V.c.winner, _V.c.flags, _LM.c.name, _LG.c.answer_words, _RM.c.name, _RG.c.answer_words)
    .join(_B, _B.c.id == _V.c.battle_id)
    .outerjoin(_LG, _LG.c.id == _B.c.left_generation_id)
    .outerjoin(_RG, _RG.c.id == _B.c.right_generation_id)
    .outerjoin(_LM, _LM.c.id == _LG.c.model_id)
    .outerjoin(_RM, _RM.c.id == _RG.c.model_id)
    .where(_V.c.battle_id == sa.bindparam("battle_id"), _V.c.annotator_id == sa.bindparam("annotator_id"))
)
_COUNTS = sa.select(
    sa.select(sa.func.count(_V.c.id)).where(_V.c.annotator_id == sa.bindparam("annotator_id")).scalar_subquery(),
    sa.select(sa.func.count(_V.c.id)).where(_V.c.annotator_id == sa.bindparam("annotator_id"),
                                            _V.c.flagged.is_(True)).scalar_subquery(),
    sa.select(sa.func.count(_A.c.id)).where(_A.c.annotator_id == sa.bindparam("annotator_id"),
                                            _A.c.skipped.is_(True)).scalar_subquery(),
)


def battle_candidates(session: Session) -> list[dict[str, Any]]:
    """Every battle that can be shown: both generations present and complete.

    Each row: ``battle_id, model_left, model_right, votes, authors`` (author ids of the two
    generations, None left out). Model names are for pair selection on the server only.
    """
    rows = session.connection().execute(_CANDIDATES).all()
    return [
        {"battle_id": r[0], "model_left": r[1], "model_right": r[2], "votes": int(r[3]),
         "authors": frozenset(a for a in (r[4], r[5]) if a is not None)}
        for r in rows
    ]


def last_battle_id(session: Session) -> int:
    """The newest battle's id (0 for none): a cheap sign that battles were formed since a look."""
    return session.connection().execute(_LAST_BATTLE).scalar() or 0


def given_battle_ids(session: Session, *, annotator_id: int) -> set[int]:
    """Battles ever assigned to this annotator (voted, skipped or open)."""
    return set(session.connection().execute(_GIVEN, {"annotator_id": annotator_id}).scalars())


def open_battle_id(session: Session, *, annotator_id: int) -> int | None:
    """The battle of the annotator's latest assignment that is neither voted nor skipped (it may
    have lost a side since).

    This is the per-user arena state: it lives in the database, keyed by the user, so a reload,
    a second tab or a forged session hash all see the same battle.
    """
    return session.connection().execute(_OPEN_BATTLE, {"annotator_id": annotator_id}).scalar()


def assign(session: Session, *, battle_id: int, annotator_id: int) -> None:
    """Record that ``battle_id`` is shown to ``annotator_id`` now (IntegrityError if it was before)."""
    session.connection().execute(_ASSIGN, {"battle_id": battle_id, "annotator_id": annotator_id,
                                           "assigned_at": utcnow(), "skipped": False})


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
    row = session.connection().execute(_VIEW, {"battle_id": battle_id}).first()
    if row is None:
        return None
    return {
        "battle_id": row[0],
        "prompt": row[1],
        "target_words": row[2],
        "left": {"think": row[3], "answer": row[4]},
        "right": {"think": row[5], "answer": row[6]},
    }


def vote_context(session: Session, *, battle_id: int, annotator_id: int) -> dict[str, Any] | None:
    """What the vote rules need, in one query; None when ``battle_id`` was never assigned to the annotator.

    ``assigned_at, skipped``; ``sides``: the two generation ids (None for a deleted one);
    ``words``: their answer word counts; ``vote``: ``(id, winner, flagged)`` of the annotator's
    vote on it, or None.
    """
    row = session.connection().execute(_VOTE_CONTEXT, {"battle_id": battle_id, "annotator_id": annotator_id}).first()
    if row is None:
        return None
    return {"assigned_at": row[0], "skipped": bool(row[1]), "sides": (row[2], row[3]),
            "words": (row[4] or 0, row[5] or 0), "vote": (row[6], row[7], bool(row[8])) if row[6] is not None else None}


def insert_vote_once(session: Session, **values: Any) -> tuple[int, str, bool, bool]:
    """Insert a vote unless the annotator already has one on that battle; ``(id, winner, flagged, created)``.

    The unique constraint decides (``ON CONFLICT DO NOTHING``), so two racing requests, on one
    process or several, store one vote; the loser gets the first vote back.
    """
    conn = session.connection()
    dialect = conn.dialect.name
    statement = _INSERT_VOTE.get(dialect)
    if statement is None:
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = _INSERT_VOTE[dialect] = (
            insert(_V).on_conflict_do_nothing(index_elements=["battle_id", "annotator_id"]).returning(_V.c.id))
    flags = list(values.get("flags") or [])
    row = {"criteria": {}, "reason": None, "reading_seconds": None, "read_left": None, "read_right": None,
           "seen_left": None, "seen_right": None, "active_seconds": None,
           **values, "flags": flags, "flagged": bool(flags), "created_at": utcnow()}
    new_id = conn.execute(statement, row).scalar()
    if new_id is not None:
        return new_id, row["winner"], row["flagged"], True
    first = conn.execute(_FIRST_VOTE, {"battle_id": row["battle_id"], "annotator_id": row["annotator_id"]}).one()
    return first[0], first[1], bool(first[2]), False


def battle_reveal(session: Session, *, battle_id: int, annotator_id: int) -> dict[str, Any]:
    """Model names and answer word counts of both sides, only once this annotator's vote is stored."""
    row = session.connection().execute(_REVEAL, {"battle_id": battle_id, "annotator_id": annotator_id}).first()
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
    votes, flagged, skipped = session.connection().execute(_COUNTS, {"annotator_id": annotator_id}).one()
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
