"""Generation rows through their life: streaming, saved progress, finished, pooled."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from core.errors import UserError
from storage.generations import (
    FINAL_STATUSES, create_generation, finish_generation, get_generation, list_generations,
    mark_stale_interrupted, save_progress, set_in_pool,
)
from storage.models import Generation, utcnow
from storage.users import add_user


@pytest.fixture
def ids(engine):
    with session_scope(engine) as session:
        model = add_model(session, name="m", backend="local")
        other = add_model(session, name="n", backend="local")
        prompt, _ = get_or_add_prompt(session, text="Write about tea.", target_words=300)
        author = add_user(session, name="w", role="writer")
        return {"model": model.id, "other": other.id, "prompt": prompt.id, "author": author.id}


def test_life_of_a_generation(engine, ids):
    params = {"temperature": 0.6, "max_tokens": 512, "seed": 1234567890123}
    with session_scope(engine) as session:
        gen = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params=params,
                                author_id=ids["author"])
    assert (gen.status, gen.seed, gen.params) == ("streaming", 1234567890123, params)
    with session_scope(engine) as session:
        save_progress(session, generation_id=gen.id, think="plan", answer="Tea is", answer_words=2)
    with session_scope(engine) as session:
        partial = get_generation(session, generation_id=gen.id)
        assert (partial.status, partial.think, partial.answer, partial.answer_words) == ("streaming", "plan", "Tea is", 2)
        assert partial.updated_at >= partial.created_at
    with session_scope(engine) as session:
        finish_generation(session, generation_id=gen.id, status="complete", answer="Tea is good.", answer_words=3,
                          think_words=1, finish_reason="stop", prompt_tokens=20, completion_tokens=9,
                          ttft_ms=210.5, duration_ms=1500.0)
    with session_scope(engine) as session:
        done = get_generation(session, generation_id=gen.id)
    assert (done.status, done.finish_reason, done.prompt_tokens, done.completion_tokens) == ("complete", "stop", 20, 9)
    assert (done.ttft_ms, done.duration_ms, done.think_words) == (210.5, 1500.0, 1)
    assert done.updated_at.tzinfo is not None


def test_finish_rejects_non_final_status(engine, ids):
    assert FINAL_STATUSES == {"complete", "truncated", "short", "interrupted", "failed"}
    with session_scope(engine) as session:
        gen = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params={})
        with pytest.raises(ValueError, match="final status"):
            finish_generation(session, generation_id=gen.id, status="streaming")
        assert get_generation(session, generation_id=10_000) is None


def test_list_generations_filters_newest_first(engine, ids):
    with session_scope(engine) as session:
        made = [
            create_generation(session, prompt_id=ids["prompt"], model_id=model, params={}, author_id=author)
            for model, author in ((ids["model"], ids["author"]), (ids["other"], None), (ids["model"], None))
        ]
        finish_generation(session, generation_id=made[1].id, status="failed", error="backend down")
    with session_scope(engine) as session:
        assert [g.id for g in list_generations(session)] == [g.id for g in reversed(made)]
        assert [g.id for g in list_generations(session, model_id=ids["model"])] == [made[2].id, made[0].id]
        assert [g.id for g in list_generations(session, author_id=ids["author"])] == [made[0].id]
        assert [g.id for g in list_generations(session, status="failed")] == [made[1].id]
        assert [g.id for g in list_generations(session, prompt_id=ids["prompt"], limit=1)] == [made[2].id]


def test_mark_stale_interrupted_only_touches_old_streaming_rows(engine, ids):
    with session_scope(engine) as session:
        stale = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params={})
        fresh = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params={})
        done = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params={})
        finish_generation(session, generation_id=done.id, status="complete")
        ten_minutes_ago = utcnow() - timedelta(minutes=10)
        session.execute(sa.update(Generation).where(Generation.id.in_([stale.id, done.id]))
                        .values(updated_at=ten_minutes_ago))
    with session_scope(engine) as session:
        assert mark_stale_interrupted(session, older_than_s=60) == 1
    with session_scope(engine) as session:
        statuses = {g.id: (g.status, g.finish_reason) for g in list_generations(session)}
    assert statuses[stale.id] == ("interrupted", "process_died")
    assert statuses[fresh.id] == ("streaming", None)
    assert statuses[done.id] == ("complete", None)


def test_set_in_pool_only_for_complete(engine, ids):
    with session_scope(engine) as session:
        gen = create_generation(session, prompt_id=ids["prompt"], model_id=ids["model"], params={})
        with pytest.raises(UserError, match="only complete generations"):
            set_in_pool(session, generation_id=gen.id)
        finish_generation(session, generation_id=gen.id, status="complete")
        assert set_in_pool(session, generation_id=gen.id).in_pool is True
        assert set_in_pool(session, generation_id=gen.id, in_pool=False).in_pool is False
        with pytest.raises(UserError, match="no generation 999"):
            set_in_pool(session, generation_id=999)


def test_generation_foreign_keys_enforced(engine, ids):
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            create_generation(session, prompt_id=ids["prompt"], model_id=9999, params={})
