"""Battles, assignments and votes, and the battles table that ratings are computed from."""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from core.errors import UserError
from storage.counted_votes import CountedVotes, banned_annotators_query
from storage.models import Assignment, Battle, Generation, ModelEntry, Prompt, User, Vote, Winner, utcnow

VALID_WINNERS = tuple(w.value for w in Winner)


def create_battle(
    session: Session, *, prompt_id: int, left_generation_id: int, right_generation_id: int, mode: str = "pool"
) -> Battle:
    battle = Battle(
        prompt_id=prompt_id,
        left_generation_id=left_generation_id,
        right_generation_id=right_generation_id,
        mode=mode,
    )
    session.add(battle)
    session.flush()
    return battle


def assign_battle(session: Session, *, battle_id: int, annotator_id: int) -> Assignment:
    """Record that ``battle_id`` was shown to ``annotator_id`` now (idempotent: keeps the first time)."""
    existing = get_assignment(session, battle_id=battle_id, annotator_id=annotator_id)
    if existing is not None:
        return existing
    assignment = Assignment(battle_id=battle_id, annotator_id=annotator_id)
    session.add(assignment)
    session.flush()
    return assignment


def get_assignment(session: Session, *, battle_id: int, annotator_id: int) -> Assignment | None:
    return session.exec(
        select(Assignment).where(Assignment.battle_id == battle_id, Assignment.annotator_id == annotator_id)
    ).first()


def get_vote(session: Session, *, battle_id: int, annotator_id: int) -> Vote | None:
    return session.exec(select(Vote).where(Vote.battle_id == battle_id, Vote.annotator_id == annotator_id)).first()


def add_vote(
    session: Session,
    *,
    battle_id: int,
    annotator_id: int,
    winner: str,
    criteria: dict[str, str] | None = None,
    reason: str | None = None,
    reading_seconds: float | None = None,
    flags: list[str] | None = None,
    read_left: float | None = None,
    read_right: float | None = None,
    seen_left: float | None = None,
    seen_right: float | None = None,
    active_seconds: float | None = None,
) -> Vote:
    """Insert one vote. A second vote by the same annotator on the same battle raises IntegrityError.

    ``read_*``/``seen_*``/``active_seconds``: the page's reading report, already clamped
    (see :mod:`arena.reading`); None when the vote came without one.
    """
    if winner not in VALID_WINNERS:
        raise UserError(f"invalid choice {winner!r}: choose one of {', '.join(VALID_WINNERS)}")
    vote = Vote(
        battle_id=battle_id,
        annotator_id=annotator_id,
        winner=winner,
        criteria=dict(criteria or {}),
        reason=reason,
        reading_seconds=reading_seconds,
        flags=list(flags or []),
        flagged=bool(flags),
        read_left=read_left,
        read_right=read_right,
        seen_left=seen_left,
        seen_right=seen_right,
        active_seconds=active_seconds,
    )
    session.add(vote)
    session.flush()
    return vote


def bulk_insert_votes(session: Session, *, rows: Iterable[dict[str, Any]]) -> int:
    """Insert many votes in one statement per chunk (imports, benchmarks, simulations)."""
    now = utcnow()
    payload = [
        {
            "battle_id": r["battle_id"],
            "annotator_id": r["annotator_id"],
            "winner": r["winner"],
            "criteria": r.get("criteria", {}),
            "reason": r.get("reason"),
            "reading_seconds": r.get("reading_seconds"),
            "flags": r.get("flags", []),
            "flagged": bool(r.get("flags")),
            "created_at": r.get("created_at", now),
        }
        for r in rows
    ]
    for start in range(0, len(payload), 5000):
        session.execute(sa.insert(Vote), payload[start : start + 5000])
    return len(payload)


def banned_annotator_ids(session: Session) -> set[int]:
    """Ids of the annotators under an active ban: their votes count in no rating and no export."""
    return {int(i) for i in session.execute(banned_annotators_query()).scalars()}


def votes_table(session: Session, *, counted: CountedVotes | None = None, category: str | None = None):
    """The votes that count (:class:`storage.counted_votes.CountedVotes`, its defaults unless
    ``counted``) joined to their battle as a pandas DataFrame, one row per vote.

    Columns: vote_id, battle_id, annotator, model_a, model_b, winner (model_a/model_b/tie/both_bad),
    category, words_a, words_b, reading_seconds, flagged, created_at. ``model_a`` is the model shown
    on the left. Battles with a deleted side are left out; ``category`` keeps one prompt category.
    """
    import pandas as pd

    left_gen, right_gen = aliased(Generation), aliased(Generation)
    left_model, right_model = aliased(ModelEntry), aliased(ModelEntry)
    query = (
        sa.select(
            Vote.id.label("vote_id"),
            Vote.battle_id,
            User.name.label("annotator"),
            left_model.name.label("model_a"),
            right_model.name.label("model_b"),
            Vote.winner,
            Prompt.category,
            left_gen.answer_words.label("words_a"),
            right_gen.answer_words.label("words_b"),
            Vote.reading_seconds,
            Vote.flagged,
            Vote.created_at,
        )
        .join(Battle, Battle.id == Vote.battle_id)
        .join(User, User.id == Vote.annotator_id)
        .join(Prompt, Prompt.id == Battle.prompt_id)
        .join(left_gen, left_gen.id == Battle.left_generation_id)
        .join(right_gen, right_gen.id == Battle.right_generation_id)
        .join(left_model, left_model.id == left_gen.model_id)
        .join(right_model, right_model.id == right_gen.model_id)
        .where(*(counted or CountedVotes()).conditions())
        .order_by(Vote.id)
    )
    if category is not None:
        query = query.where(Prompt.category == category)
    frame = pd.DataFrame(session.execute(query).all(), columns=[
        "vote_id", "battle_id", "annotator", "model_a", "model_b", "winner", "category",
        "words_a", "words_b", "reading_seconds", "flagged", "created_at",
    ])
    frame["winner"] = frame["winner"].map({"left": "model_a", "right": "model_b", "tie": "tie", "both_bad": "both_bad"})
    return frame


def voters_sharing_an_address(session: Session) -> dict[str, list[str]]:
    """For each annotator with a vote, the other voting accounts that signed in from one of the
    same client addresses (``user_sessions.address``); annotators sharing none are left out.

    One person voting as several accounts is what this looks for; sessions made before addresses
    were recorded (NULL) match nothing.
    """
    from storage.models import UserSession

    voters = sa.select(Vote.annotator_id).distinct()
    rows = session.execute(
        sa.select(UserSession.address, User.name).join(User, User.id == UserSession.user_id)
        .where(UserSession.address.is_not(None), UserSession.user_id.in_(voters)).distinct()
    ).all()
    by_address: dict[str, set[str]] = {}
    for address, name in rows:
        by_address.setdefault(address, set()).add(name)
    shared: dict[str, set[str]] = {}
    for names in by_address.values():
        for name in names:
            if len(names) > 1:
                shared.setdefault(name, set()).update(names - {name})
    return {name: sorted(others) for name, others in shared.items()}
