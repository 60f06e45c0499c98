"""The Data tab's plain functions on a seeded database (SQLite and PostgreSQL); no browser needed."""

from __future__ import annotations

import pytest

from storage.votes import add_vote
from storage.engine import session_scope
from storage.overview import OVERVIEW_TABLES
from storage.runs import start_run
from storage.users import add_user
from tests.storage.helpers import seed_arena
from webapp.data_tab import counts_markdown, table_for


@pytest.fixture
def seeded(engine):
    seeded = seed_arena(engine, battles=3, annotators=2)
    with session_scope(engine) as session:
        add_user(session, name="admin", role="admin", password="secret")
        for battle in seeded.battle_ids:
            add_vote(session, battle_id=battle, annotator_id=seeded.annotator_ids[0], winner="left",
                     reason="Left is longer. " * 30)
        start_run(session, kind="dpo", base_model="b", config={"beta": 0.1}, dataset_fingerprint="f", output_dir="o")
    return seeded


def test_counts_markdown_on_empty_database(engine):
    text = counts_markdown(engine)
    assert text == ("**models**: 0 · **prompts**: 0 · **generations**: 0 · **battles**: 0 · **votes**: 0 · "
                    "**users**: 0 · **training runs**: 0")


def test_counts_markdown_on_seeded_database(engine, seeded):
    assert counts_markdown(engine) == ("**models**: 2 · **prompts**: 3 · **generations**: 6 · **battles**: 3 · "
                                       "**votes**: 3 · **users**: 3 · **training runs**: 1")


def test_counts_use_thousands_separators(engine):
    from storage.votes import bulk_insert_votes

    seeded = seed_arena(engine, battles=1, annotators=0)
    with session_scope(engine) as session:
        users = [add_user(session, name=f"a{i}", role="annotator").id for i in range(1200)]
        bulk_insert_votes(session, rows=[{"battle_id": seeded.battle_ids[0], "annotator_id": u, "winner": "tie"}
                                         for u in users])
    assert "**votes**: 1,200" in counts_markdown(engine) and "**users**: 1,200" in counts_markdown(engine)


def test_every_table_frame(engine, seeded):
    frames = {name: table_for(engine, name) for name in OVERVIEW_TABLES}
    assert {name: len(frame) for name, frame in frames.items()} == {
        "models": 2, "prompts": 3, "generations": 6, "battles": 3, "votes": 3, "users": 3, "training_runs": 1}
    assert frames["models"]["name"].tolist() == ["beta", "alpha"]  # newest first
    assert frames["battles"]["id"].tolist() == sorted(seeded.battle_ids, reverse=True)
    assert "password_hash" not in frames["users"].columns
    assert frames["users"]["name"].tolist() == ["admin", "ann1", "ann0"]
    reasons = frames["votes"]["reason"].tolist()
    assert all(len(r) == 200 and r.endswith("…") for r in reasons)
    assert frames["training_runs"]["config"].iloc[0] == "{'beta': 0.1}"
    assert str(frames["votes"]["created_at"].dt.tz) == "UTC"


def test_models_of_the_viewers_unvoted_battle_are_hidden(engine):
    """A researcher holding an open battle looks it up in the Data tab: its models stay hidden."""
    from storage.models import Battle
    from storage.votes import assign_battle
    from webapp.data_tab import HIDDEN

    seeded = seed_arena(engine, battles=2, annotators=0)
    with session_scope(engine) as session:
        rita = add_user(session, name="rita", role="researcher").id
        other = add_user(session, name="rose", role="researcher").id
        open_battle = session.get(Battle, seeded.battle_ids[0])
        blind = {open_battle.left_generation_id, open_battle.right_generation_id}
        assign_battle(session, battle_id=open_battle.id, annotator_id=rita)
    mine = table_for(engine, "generations", viewer_id=rita)
    held = mine["model_id"] == HIDDEN
    assert held.sum() == 2 and set(mine.loc[held, "id"]) == {HIDDEN} and not blind & set(mine["id"])
    assert list(held) == sorted(held)  # listed last, not where their ids would place them
    assert all(isinstance(v, int) or hasattr(v, "__int__") for v in mine.loc[~held, "model_id"])
    battles = table_for(engine, "battles", viewer_id=rita)
    row = battles[battles["id"] == open_battle.id].iloc[0]
    assert row["left_generation_id"] == row["right_generation_id"] == HIDDEN
    theirs = table_for(engine, "generations", viewer_id=other)
    assert HIDDEN not in set(theirs["model_id"].astype(str))
    with session_scope(engine) as session:
        add_vote(session, battle_id=seeded.battle_ids[0], annotator_id=rita, winner="tie")
    assert HIDDEN not in set(table_for(engine, "generations", viewer_id=rita)["model_id"].astype(str))
