"""History, reopening and "Send to arena", with their owner checks, on SQLite and PostgreSQL."""

import pytest

from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from core.errors import UserError
from storage.generations import create_generation, finish_generation, get_generation
from storage.users import add_user
from webapp.auth import Identity, PermissionDenied
from webapp.history import history_rows, offer_to_arena, open_generation


@pytest.fixture
def world(engine):
    """Two writers, a researcher, and one generation per writer (ann's complete, bob's truncated)."""
    with session_scope(engine) as s:
        users = {name: add_user(s, name=name, role=role, password="pw")
                 for name, role in [("ann", "writer"), ("bob", "writer"), ("rita", "researcher"), ("adam", "admin")]}
        model = add_model(s, name="m1", backend="local")
        prompt, _ = get_or_add_prompt(s, text="Write <script>alert(1)</script> a poem", target_words=300)
        gens = {}
        for name, status, reason in [("ann", "complete", "stop"), ("bob", "truncated", "length")]:
            g = create_generation(s, prompt_id=prompt.id, model_id=model.id, author_id=users[name].id,
                                  params={"target_words": 300, "seed": 1})
            finish_generation(s, generation_id=g.id, status=status, finish_reason=reason, answer="Roses.",
                              answer_words=1, completion_tokens=3, duration_ms=1500.0)
            gens[name] = g.id
        ids = {name: Identity(user_id=u.id, name=u.name, role=u.role) for name, u in users.items()}
    return engine, ids, gens


def test_history_lists_only_the_callers_rows(world):
    engine, who, gens = world
    rows = history_rows(engine, who=who["ann"])
    assert [r[0] for r in rows] == [gens["ann"]]
    assert rows[0][2:6] == ["m1", "complete", 1, ""]
    assert rows[0][6] == "Write <script>alert(1)</script> a poem"
    assert history_rows(engine, who=who["rita"]) == []


def test_open_is_refused_for_another_writers_text(world):
    engine, who, gens = world
    mine = open_generation(engine, who=who["ann"], generation_id=gens["ann"])
    assert (mine.request, mine.answer, mine.target_words, mine.model) == (
        "Write <script>alert(1)</script> a poem", "Roses.", 300, "m1")
    with pytest.raises(PermissionDenied, match=f"#{gens['bob']} is not one of yours"):
        open_generation(engine, who=who["ann"], generation_id=gens["bob"])
    with pytest.raises(PermissionDenied, match="#999999 is not one of yours"):
        open_generation(engine, who=who["ann"], generation_id=999999)
    with pytest.raises(UserError, match="not a generation number"):
        open_generation(engine, who=who["ann"], generation_id="1; drop table")
    assert open_generation(engine, who=who["rita"], generation_id=gens["bob"]).status == "truncated"


def test_offer_to_arena_needs_owner_and_complete(world):
    engine, who, gens = world
    with pytest.raises(PermissionDenied):
        offer_to_arena(engine, who=who["bob"], generation_id=gens["ann"])
    with pytest.raises(PermissionDenied):
        offer_to_arena(engine, who=who["rita"], generation_id=gens["ann"])
    with pytest.raises(UserError, match="only complete generations"):
        offer_to_arena(engine, who=who["bob"], generation_id=gens["bob"])
    assert offer_to_arena(engine, who=who["ann"], generation_id=gens["ann"]) == gens["ann"]
    with session_scope(engine) as s:
        assert get_generation(s, generation_id=gens["ann"]).in_pool is True
        assert get_generation(s, generation_id=gens["bob"]).in_pool is False
    assert history_rows(engine, who=who["ann"])[0][5] == "yes"
