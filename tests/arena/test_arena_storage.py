"""Arena integrity at the storage/service level, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from core.errors import UserError
from storage.models import Assignment, Battle, Generation, Vote
from storage.users import add_user
from arena.seed import seed_pool
from arena.service import (
    EMPTY_POOL_MESSAGE, ArenaSettings, next_battle, reveal_battle, skip_battle, submit_vote, my_counts,
)

FAST = ArenaSettings(words_per_minute=1e9)


def _user(engine, name, role="annotator") -> int:
    with session_scope(engine) as session:
        return add_user(session, name=name, role=role).id


def test_empty_pool_says_how_to_fill_it_to_whoever_can(engine):
    rita = _user(engine, "rita", role="researcher")
    result = next_battle(engine, annotator_id=rita, settings=FAST)
    assert result == {"message": EMPTY_POOL_MESSAGE} and "lwz battles fill" in result["message"]
    ann = _user(engine, "ann")
    told = next_battle(engine, annotator_id=ann, settings=FAST)["message"]
    assert "lwz" not in told and "Write tab" not in told and "Next battle again later" in told


def test_flow_assign_vote_reveal_and_no_names_before(engine):
    pool = seed_pool(engine, models=["model-one", "model-two"], prompts=2, words=30)
    assert len(pool.battle_ids) == 2
    uid = _user(engine, "ann")
    view = next_battle(engine, annotator_id=uid, settings=FAST)["battle"]
    assert "model-one" not in repr(view) and "model-two" not in repr(view)
    assert next_battle(engine, annotator_id=uid, settings=FAST)["battle"]["battle_id"] == view["battle_id"]
    with pytest.raises(UserError, match="vote first"):
        reveal_battle(engine, annotator_id=uid, battle_id=view["battle_id"])
    ack = submit_vote(engine, annotator_id=uid, battle_id=view["battle_id"], winner="left",
                      criteria={"coherence": "right", "style": ""}, reason=" fine ", settings=FAST)
    assert ack["created"] and not ack["flagged"]
    assert ack["counts"] == {"votes": 1, "flagged": 0, "skipped": 0} == my_counts(engine, annotator_id=uid)
    shown = reveal_battle(engine, annotator_id=uid, battle_id=view["battle_id"])
    assert {shown["left"]["model"], shown["right"]["model"]} == {"model-one", "model-two"}
    assert shown["left"]["words"] == 30
    second = next_battle(engine, annotator_id=uid, settings=FAST)["battle"]
    assert second["battle_id"] != view["battle_id"]
    assert skip_battle(engine, annotator_id=uid, battle_id=second["battle_id"])
    assert "every battle" in next_battle(engine, annotator_id=uid, settings=FAST)["message"]
    assert my_counts(engine, annotator_id=uid) == {"votes": 1, "flagged": 0, "skipped": 1}
    with session_scope(engine) as session:
        vote = session.exec(sa.select(Vote)).scalars().one()
        assert vote.criteria == {"coherence": "right"} and vote.reason == "fine"


def test_vote_refused_unless_assigned_and_repeat_returns_first(engine):
    pool = seed_pool(engine, models=["m1", "m2"], prompts=1, words=20)
    bid = pool.battle_ids[0]
    ann, other = _user(engine, "ann"), _user(engine, "bob")
    with pytest.raises(UserError, match="not assigned"):
        submit_vote(engine, annotator_id=ann, battle_id=bid, winner="left", settings=FAST)
    next_battle(engine, annotator_id=ann, settings=FAST)
    first = submit_vote(engine, annotator_id=ann, battle_id=bid, winner="left", settings=FAST)
    again = submit_vote(engine, annotator_id=ann, battle_id=bid, winner="right", settings=FAST)
    assert again == {**first, "created": False}
    with pytest.raises(UserError, match="not assigned"):
        submit_vote(engine, annotator_id=other, battle_id=bid, winner="left", settings=FAST)
    with session_scope(engine) as session:
        assert session.execute(sa.select(sa.func.count(Vote.id))).scalar_one() == 1


def test_concurrent_double_vote_stores_one(engine):
    pool = seed_pool(engine, models=["m1", "m2"], prompts=1, words=20)
    ann = _user(engine, "ann")
    next_battle(engine, annotator_id=ann, settings=FAST)
    results, barrier = [], threading.Barrier(6)

    def vote(choice):
        barrier.wait()
        results.append(submit_vote(engine, annotator_id=ann, battle_id=pool.battle_ids[0], winner=choice,
                                   settings=FAST))

    threads = [threading.Thread(target=vote, args=(w,)) for w in ["left", "right", "tie"] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and sum(r["created"] for r in results) == 1
    assert len({(r["vote_id"], r["winner"]) for r in results}) == 1
    with session_scope(engine) as session:
        assert session.execute(sa.select(sa.func.count(Vote.id))).scalar_one() == 1


@pytest.mark.parametrize("winner,criteria,reason,match", [
    ("A", None, None, "invalid choice 'A'"),
    ("left", {"humour": "left"}, None, "unknown criterion"),
    ("left", {"style": "both"}, None, "invalid choice 'both' for style"),
    ("left", None, "x" * 5001, "5,001 characters; the limit is 5,000"),
])
def test_bad_vote_input_refused_and_nothing_stored(engine, winner, criteria, reason, match):
    pool = seed_pool(engine, models=["m1", "m2"], prompts=1, words=20)
    ann = _user(engine, "ann")
    next_battle(engine, annotator_id=ann, settings=FAST)
    with pytest.raises(UserError, match=match):
        submit_vote(engine, annotator_id=ann, battle_id=pool.battle_ids[0], winner=winner,
                    criteria=criteria, reason=reason, settings=FAST)
    with session_scope(engine) as session:
        assert session.execute(sa.select(sa.func.count(Vote.id))).scalar_one() == 0


def test_fast_vote_is_stored_and_flagged(engine):
    pool = seed_pool(engine, models=["m1", "m2"], prompts=1, words=500)
    ann = _user(engine, "ann")
    next_battle(engine, annotator_id=ann, settings=ArenaSettings())
    ack = submit_vote(engine, annotator_id=ann, battle_id=pool.battle_ids[0], winner="tie", settings=ArenaSettings())
    assert ack["created"] and ack["flagged"]
    with session_scope(engine) as session:
        vote = session.exec(sa.select(Vote)).scalars().one()
        assert vote.flags == ["too_fast", "under_floor"] and vote.reading_seconds < 60
        from storage.counted_votes import CountedVotes
        from storage.votes import votes_table
        assert len(votes_table(session)) == 0 and len(votes_table(session, counted=CountedVotes(include_flagged_votes=True))) == 1


def test_deleted_generation_battle_is_skipped(engine):
    pool = seed_pool(engine, models=["m1", "m2"], prompts=2, words=20)
    ann = _user(engine, "ann")
    first = next_battle(engine, annotator_id=ann, settings=FAST)["battle"]["battle_id"]
    with session_scope(engine) as session:
        battle = session.get(Battle, first)
        session.delete(session.get(Generation, battle.left_generation_id))
    with pytest.raises(UserError, match="no longer available|not assigned"):
        submit_vote(engine, annotator_id=ann, battle_id=first, winner="left", settings=FAST)
    nxt = next_battle(engine, annotator_id=ann, settings=FAST)["battle"]["battle_id"]
    assert nxt != first and nxt in pool.battle_ids
    with session_scope(engine) as session:
        assert session.exec(sa.select(Assignment).where(Assignment.battle_id == first)).scalars().one().skipped


def test_own_writing_never_shown(engine):
    ann = _user(engine, "writer-ann")
    seed_pool(engine, models=["m1", "m2"], prompts=2, words=20, author_id=ann)
    assert "every battle" in next_battle(engine, annotator_id=ann, settings=FAST)["message"]


def test_only_complete_pooled_generations_enter_battles(engine):
    from storage.generations import finish_generation
    from arena.pool import form_battles

    pool = seed_pool(engine, models=["m1", "m2", "m3"], prompts=1, words=20)
    assert len(pool.battle_ids) == 3
    with session_scope(engine) as session:
        gen_ids = pool.generation_ids
        for gid, status in zip(gen_ids, ["truncated", "failed", "interrupted"]):
            from storage.generations import create_generation
            g = session.get(Generation, gid)
            extra = create_generation(session, prompt_id=g.prompt_id, model_id=g.model_id, params={})
            finish_generation(session, generation_id=extra.id, status=status, answer="text text", answer_words=2)
            session.execute(sa.update(Generation).where(Generation.id == extra.id).values(in_pool=True))
        assert form_battles(session, seed=1) == []


def test_battle_naming_a_model_is_marked(engine):
    from storage.generations import finish_generation
    from arena.pool import form_battles

    pool = seed_pool(engine, models=["m1", "m2"], prompts=1, words=20)
    with session_scope(engine) as session:
        from storage.generations import create_generation
        from storage.catalog import add_model
        m3 = add_model(session, name="m3", backend="local")
        g = session.get(Generation, pool.generation_ids[0])
        gen = create_generation(session, prompt_id=g.prompt_id, model_id=m3.id, params={})
        finish_generation(session, generation_id=gen.id, status="complete",
                          answer="As a model trained by OpenAI, here is a story.", answer_words=9)
        session.execute(sa.update(Generation).where(Generation.id == gen.id).values(in_pool=True))
        new = form_battles(session, seed=3)
        assert len(new) == 2
        for bid in new:
            extra = session.get(Battle, bid).extra
            assert extra["names_model"] is True and extra["names_found"] == ["openai"]
        for bid in pool.battle_ids:
            assert session.get(Battle, bid).extra["names_model"] is False


def test_a_battle_that_lost_a_side_after_the_list_was_read_is_never_assigned(engine):
    """Next reuses the list of showable battles for a while; a battle whose text was deleted since
    must not be given to anyone (nor counted as their skip)."""
    pool = seed_pool(engine, models=["m1", "m2"], prompts=2, words=20)
    first, second = _user(engine, "ann"), _user(engine, "bob")
    settings = ArenaSettings(words_per_minute=1e9, candidates_s=3600.0)
    shown = next_battle(engine, annotator_id=first, settings=settings)["battle"]["battle_id"]  # the list is read
    other = next(b for b in pool.battle_ids if b != shown)
    with session_scope(engine) as session:
        session.delete(session.get(Generation, session.get(Battle, other).left_generation_id))
    for _ in range(3):
        result = next_battle(engine, annotator_id=second, settings=settings)
        assert result.get("battle", {}).get("battle_id") in (None, shown)
    with session_scope(engine) as session:
        given = session.execute(sa.select(Assignment.battle_id, Assignment.skipped)
                                .where(Assignment.annotator_id == second)).all()
    assert [(b, s) for b, s in given] == [(shown, False)]
