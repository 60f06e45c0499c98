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
    with pytest.raises(PermissionDenied) as theirs:
        open_generation(engine, who=who["ann"], generation_id=gens["bob"])
    with pytest.raises(PermissionDenied) as missing:
        open_generation(engine, who=who["ann"], generation_id=999999)
    # One wording for "not yours" and "does not exist": no claim about ownership of a missing id,
    # and nothing that tells an existing id from a missing one.
    assert str(theirs.value) == f"there is no generation #{gens['bob']} that you may open"
    assert str(missing.value) == "there is no generation #999999 that you may open"
    with pytest.raises(UserError, match="there is no generation #"):
        open_generation(engine, who=who["ann"], generation_id=2**70)
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


def _battle_for(engine, who, gens, annotator):
    """A second model's complete text for ann's request, both pooled, and a battle given to ``annotator``."""
    from arena.rules import ArenaSettings
    from arena.service import next_battle, refresh_pool
    from storage.generations import set_in_pool

    with session_scope(engine) as s:
        other = add_model(s, name="m2", backend="local")
        prompt_id = get_generation(s, generation_id=gens["ann"]).prompt_id
        g = create_generation(s, prompt_id=prompt_id, model_id=other.id, author_id=who["bob"].user_id, params={})
        finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop", answer="Tulips.",
                          answer_words=1)
        for gid in (gens["ann"], g.id):
            set_in_pool(s, generation_id=gid)
    assert refresh_pool(engine, settings=ArenaSettings()) == 1
    view = next_battle(engine, annotator_id=who[annotator].user_id, settings=ArenaSettings())["battle"]
    return view["battle_id"], g.id


def test_an_open_battle_stays_blind_to_its_reader(world):
    """A researcher may read any text, but not the texts of a battle they hold unvoted."""
    from arena.rules import ArenaSettings
    from arena.service import submit_vote

    engine, who, gens = world
    battle_id, second = _battle_for(engine, who, gens, "rita")
    for gid in (gens["ann"], second):
        with pytest.raises(PermissionDenied, match="battle you have not voted on yet"):
            open_generation(engine, who=who["rita"], generation_id=gid)
    assert open_generation(engine, who=who["adam"], generation_id=second).model == "m2"  # not adam's battle
    assert open_generation(engine, who=who["ann"], generation_id=gens["ann"]).model == "m1"  # the author
    submit_vote(engine, annotator_id=who["rita"].user_id, battle_id=battle_id, winner="tie",
                settings=ArenaSettings(words_per_minute=1e9))
    assert open_generation(engine, who=who["rita"], generation_id=second).model == "m2"


def test_send_to_arena_forms_the_battle_or_says_what_is_missing(world):
    from arena.rules import ArenaSettings
    from webapp.write_tab import arena_battles, sent_note

    class Ctx:
        def __init__(self, engine):
            self.engine, self.arena = engine, ArenaSettings()

    engine, who, gens = world
    offer_to_arena(engine, who=who["ann"], generation_id=gens["ann"])
    lonely = sent_note(gens["ann"], arena_battles(Ctx(engine), gens["ann"]))
    assert "in no battle yet" in lonely and "same request by another model" in lonely
    with session_scope(engine) as s:
        other = add_model(s, name="m2", backend="local")
        prompt_id = get_generation(s, generation_id=gens["ann"]).prompt_id
        g = create_generation(s, prompt_id=prompt_id, model_id=other.id, author_id=who["bob"].user_id, params={})
        finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop", answer="Tulips.",
                          answer_words=1)
        second = g.id
    offer_to_arena(engine, who=who["bob"], generation_id=second)
    # At once, not at the next periodic refresh of the pool.
    assert sent_note(second, arena_battles(Ctx(engine), second)).startswith(f"#{second} is in the arena: 1 battle ")
