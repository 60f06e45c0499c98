"""Battles, assignments, votes and the battles table for ratings (the original arena functions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.counted_votes import CountedVotes
from storage.votes import (
    VALID_WINNERS, add_vote, assign_battle, bulk_insert_votes, create_battle, get_assignment, get_vote, votes_table,
)
from storage.engine import session_scope
from core.errors import UserError
from storage.models import Battle, Generation, Vote, utcnow
from tests.storage.helpers import seed_arena

TABLE_COLUMNS = ["vote_id", "battle_id", "annotator", "model_a", "model_b", "winner", "category",
                 "words_a", "words_b", "reading_seconds", "flagged", "created_at"]


def test_create_battle_and_assign_is_idempotent(engine):
    seeded = seed_arena(engine, battles=1, annotators=1)
    battle_id, annotator = seeded.battle_ids[0], seeded.annotator_ids[0]
    with session_scope(engine) as session:
        battle = session.get(Battle, battle_id)
        assert (battle.left_generation_id, battle.right_generation_id) == tuple(seeded.generation_ids[:2])
        assert battle.mode == "pool" and battle.created_at.tzinfo is not None
        assert get_assignment(session, battle_id=battle_id, annotator_id=annotator) is None
        first = assign_battle(session, battle_id=battle_id, annotator_id=annotator)
    with session_scope(engine) as session:
        second = assign_battle(session, battle_id=battle_id, annotator_id=annotator)
        assert second.id == first.id and second.assigned_at == first.assigned_at
        assert get_assignment(session, battle_id=battle_id, annotator_id=annotator).id == first.id


def test_add_and_get_vote(engine):
    seeded = seed_arena(engine, battles=1, annotators=1)
    battle_id, annotator = seeded.battle_ids[0], seeded.annotator_ids[0]
    with session_scope(engine) as session:
        add_vote(session, battle_id=battle_id, annotator_id=annotator, winner="left",
                 criteria={"coherence": "left", "style": "tie"}, reason="clearer", reading_seconds=42.5)
    with session_scope(engine) as session:
        vote = get_vote(session, battle_id=battle_id, annotator_id=annotator)
        assert (vote.winner, vote.reason, vote.reading_seconds) == ("left", "clearer", 42.5)
        assert vote.criteria == {"coherence": "left", "style": "tie"}
        assert vote.flags == [] and vote.flagged is False and vote.created_at.tzinfo is not None
        assert get_vote(session, battle_id=battle_id, annotator_id=annotator + 100) is None


def test_invalid_winner_is_a_user_error(engine):
    seeded = seed_arena(engine, battles=1, annotators=1)
    assert VALID_WINNERS == ("left", "right", "tie", "both_bad")
    with pytest.raises(UserError, match="invalid choice 'a': choose one of left, right, tie, both_bad"):
        with session_scope(engine) as session:
            add_vote(session, battle_id=seeded.battle_ids[0], annotator_id=seeded.annotator_ids[0], winner="a")


def test_second_vote_by_same_annotator_is_refused_by_the_database(engine):
    seeded = seed_arena(engine, battles=1, annotators=2)
    battle_id, first, other = seeded.battle_ids[0], *seeded.annotator_ids
    with session_scope(engine) as session:
        add_vote(session, battle_id=battle_id, annotator_id=first, winner="left")
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            add_vote(session, battle_id=battle_id, annotator_id=first, winner="right")
    with pytest.raises(sa.exc.IntegrityError):  # even past the ORM, as a raw insert
        with session_scope(engine) as session:
            session.execute(sa.insert(Vote).values(battle_id=battle_id, annotator_id=first, winner="tie",
                                                   criteria={}, flags=[], flagged=False, created_at=utcnow()))
    with session_scope(engine) as session:
        add_vote(session, battle_id=battle_id, annotator_id=other, winner="right")
    with session_scope(engine) as session:
        winners = session.execute(sa.select(Vote.annotator_id, Vote.winner).order_by(Vote.id)).all()
    assert [tuple(w) for w in winners] == [(first, "left"), (other, "right")]


def test_foreign_keys_enforced_and_cascade(engine):
    seeded = seed_arena(engine, battles=1, annotators=1)
    battle_id, annotator = seeded.battle_ids[0], seeded.annotator_ids[0]
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            add_vote(session, battle_id=battle_id + 1000, annotator_id=annotator, winner="tie")
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            create_battle(session, prompt_id=seeded.prompt_ids[0], left_generation_id=10_000,
                          right_generation_id=seeded.generation_ids[1])
    with session_scope(engine) as session:
        add_vote(session, battle_id=battle_id, annotator_id=annotator, winner="tie")
        session.execute(sa.delete(Generation).where(Generation.id == seeded.generation_ids[0]))
    with session_scope(engine) as session:  # a deleted side is NULL; the battle and its vote stay
        battle = session.get(Battle, battle_id)
        assert battle.left_generation_id is None and battle.right_generation_id == seeded.generation_ids[1]
        assert get_vote(session, battle_id=battle_id, annotator_id=annotator) is not None
        assert votes_table(session).empty
        session.execute(sa.delete(Battle).where(Battle.id == battle_id))
    with session_scope(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Vote)).scalar_one() == 0


def test_sqlite_foreign_keys_on_raw_connection(sqlite_engine):
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        with sqlite_engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO votes (battle_id, annotator_id, winner, criteria, flags, flagged, created_at) "
                "VALUES (1, 1, 'tie', '{}', '[]', 0, '2026-01-01 00:00:00')"
            )


def test_votes_table_maps_sides_and_filters(engine):
    seeded = seed_arena(engine, battles=3, annotators=2)
    ann0, ann1 = seeded.annotator_ids
    b0, b1, b2 = seeded.battle_ids
    with session_scope(engine) as session:
        add_vote(session, battle_id=b0, annotator_id=ann0, winner="left", reading_seconds=10.0)
        add_vote(session, battle_id=b0, annotator_id=ann1, winner="right")
        add_vote(session, battle_id=b1, annotator_id=ann0, winner="tie")
        add_vote(session, battle_id=b2, annotator_id=ann0, winner="both_bad", flags=["spam"])
    with session_scope(engine) as session:
        frame = votes_table(session)
        flagged_too = votes_table(session, counted=CountedVotes(include_flagged_votes=True))
        cat1 = votes_table(session, category="cat1")
        future = votes_table(session, counted=CountedVotes(since=utcnow() + timedelta(hours=1)))
        past = votes_table(session, counted=CountedVotes(until=utcnow() - timedelta(hours=1)))
        recent = votes_table(session, counted=CountedVotes(since=utcnow() - timedelta(hours=1), until=utcnow() + timedelta(hours=1)))
    assert list(frame.columns) == TABLE_COLUMNS
    assert frame["winner"].tolist() == ["model_a", "model_b", "tie"]
    assert frame[["model_a", "model_b"]].drop_duplicates().values.tolist() == [["alpha", "beta"]]
    assert frame["annotator"].tolist() == ["ann0", "ann1", "ann0"]
    assert frame["words_a"].tolist() == [100, 100, 101] and frame["words_b"].tolist() == [200, 200, 201]
    assert frame["reading_seconds"].iloc[0] == 10.0
    assert flagged_too["winner"].tolist() == ["model_a", "model_b", "tie", "both_bad"]
    assert bool(flagged_too["flagged"].iloc[-1]) is True
    assert cat1["battle_id"].tolist() == [b1]
    assert future.empty and past.empty and len(recent) == 3
    assert str(frame["created_at"].dt.tz) == "UTC"


def test_votes_table_empty(engine):
    with session_scope(engine) as session:
        frame = votes_table(session)
    assert frame.empty and list(frame.columns) == TABLE_COLUMNS


def test_bulk_insert_votes(engine):
    seeded = seed_arena(engine, battles=3, annotators=2)
    rows = [{"battle_id": b, "annotator_id": a, "winner": w}
            for b, w in zip(seeded.battle_ids, ("left", "right", "tie")) for a in seeded.annotator_ids]
    rows[0]["flags"] = ["too_fast"]
    with session_scope(engine) as session:
        assert bulk_insert_votes(session, rows=rows) == 6
    with session_scope(engine) as session:
        assert len(votes_table(session)) == 5
        assert len(votes_table(session, counted=CountedVotes(include_flagged_votes=True))) == 6
        stored = session.execute(sa.select(Vote).order_by(Vote.id)).scalars().all()
    assert stored[0].flags == ["too_fast"] and stored[0].flagged is True
    assert all(v.created_at.tzinfo is not None for v in stored)
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            bulk_insert_votes(session, rows=rows[:1])
