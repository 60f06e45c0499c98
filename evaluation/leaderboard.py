"""Ratings and annotator reports from the database's votes (the leaderboard's data side).

Which votes count (flagged votes, flagged or banned annotators, battles whose text names a model)
is decided by :mod:`storage.counted_votes`, as for the cross-check and every training export;
a flagged vote or a named battle counts here only when asked for.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from evaluation.ratings import RatingResult, compute_ratings
from storage.counted_votes import CountedVotes
from storage.engine import session_scope


def battles_frame(session, *, category: str | None = None, counted: CountedVotes | None = None):
    """The votes that count (``counted``, :class:`CountedVotes`' defaults unless given) as a battles
    table (``storage.votes.votes_table``)."""
    from storage.votes import votes_table

    return votes_table(session, counted=counted, category=category)


def registered_models(session) -> list[str]:
    from storage.catalog import list_models

    return [m.name for m in list_models(session)]


def categories(engine: Engine) -> list[str]:
    """Categories of prompts that have at least one battle."""
    from storage.models import Battle, Prompt

    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(Prompt.category).join(Battle, Battle.prompt_id == Prompt.id).where(Prompt.category.is_not(None)).distinct()
        ).all()
    return sorted(str(r[0]) for r in rows)


def leaderboard_from_db(
    engine: Engine,
    *,
    category: str | None = None,
    length_control: bool = False,
    style_control: bool = False,
    include_flagged: bool = False,
    include_named: bool = False,
    **options: Any,
) -> tuple[RatingResult, Any]:
    """Ratings from the stored votes; returns ``(result, battles_frame)``.

    ``options`` go to :func:`evaluation.ratings.compute_ratings` (method, ties, bootstrap, seed,
    anchor, min_battles, style_features, ...). Every registered model is listed; those without
    votes unrated. Style control reads its features from the stored answers.
    """
    with session_scope(engine) as session:
        counted = CountedVotes(include_flagged_votes=include_flagged, include_named=include_named)
        frame = battles_frame(session, category=category, counted=counted)
        models = registered_models(session)
        if style_control:
            frame = with_style_features(session, frame)
    result = compute_ratings(frame, length_control=length_control, style_control=style_control, models=models, **options)
    return result, frame


def with_style_features(session, frame):
    """``frame`` with the style feature columns (:mod:`evaluation.style`) of each battle's stored answers.

    Features are computed once per generation (a battle's texts are shared by all its votes).
    """
    from storage.models import Battle, Generation

    from evaluation.style import STYLE_FEATURES, answer_features, column_names

    frame = frame.copy()
    ids = sorted({int(b) for b in frame["battle_id"]}) if len(frame) else []
    sides: dict[int, tuple[int, int]] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(sa.select(Battle.id, Battle.left_generation_id, Battle.right_generation_id)
                               .where(Battle.id.in_(ids[start : start + 500]))).all()
        sides.update({int(r[0]): (r[1], r[2]) for r in rows})
    generation_ids = sorted({g for pair in sides.values() for g in pair if g is not None})
    features: dict[int, dict[str, float]] = {}
    for start in range(0, len(generation_ids), 200):
        rows = session.execute(sa.select(Generation.id, Generation.answer)
                               .where(Generation.id.in_(generation_ids[start : start + 200]))).all()
        features.update({int(g): answer_features(text or "") for g, text in rows})
    empty = dict.fromkeys(STYLE_FEATURES, 0.0)
    for side, position in (("a", 0), ("b", 1)):
        per_vote = [features.get(sides.get(int(b), (None, None))[position], empty) for b in frame["battle_id"]]
        for feature in STYLE_FEATURES:
            column = column_names(feature)[position]
            if feature != "length":  # words_a/b already come from the stored word counts
                frame[column] = [f[feature] for f in per_vote]
    return frame


def annotators_from_db(engine: Engine, *, include_flagged: bool = True, include_named: bool = True,
                       settings=None) -> dict[str, Any]:
    """:func:`evaluation.agreement.agreement_report` over the stored votes (all of them by default,
    flagged and banned annotators included: reliability is about the annotators, not about blindness), its
    per-annotator rows extended by :func:`evaluation.hygiene.hygiene_report` (skew, side bias,
    too-fast share, flags, ban)."""
    from evaluation.agreement import agreement_report
    from evaluation.hygiene import hygiene_report
    from storage.models import User, Vote
    from storage.votes import banned_annotator_ids, voters_sharing_an_address

    with session_scope(engine) as session:
        counted = CountedVotes(include_flagged_votes=include_flagged, include_flagged_annotators=True,
                               include_banned=True, include_named=include_named)
        frame = battles_frame(session, counted=counted)
        flags = {int(i): list(f or [])
                 for i, f in session.execute(sa.select(Vote.id, Vote.flags).where(Vote.flagged.is_(True))).all()}
        banned_ids = banned_annotator_ids(session)
        banned = {n for (n,) in session.execute(sa.select(User.name).where(User.id.in_(banned_ids))).all()} if banned_ids else set()
        shared = voters_sharing_an_address(session)
    report = agreement_report(frame)
    report["annotators"] = hygiene_report(frame, flags_by_vote=flags, banned=banned, settings=settings,
                                          shared_address=shared)
    return report
