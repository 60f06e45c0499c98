"""One vote set, every reader of the votes: the leaderboard, the annotator report, the judge
cross-check and the training exports count the same votes and give each battle one verdict.

The battles are formed by the arena's pool (which marks a text naming a model) and every vote is
cast through ``arena.rules.cast_vote``, as the Arena tab casts it.
"""

from __future__ import annotations

from evaluation.crosscheck import human_verdicts
from evaluation.hygiene import ban
from evaluation.leaderboard import annotators_from_db, leaderboard_from_db
from storage.counted_votes import battle_tallies
from storage.engine import session_scope
from tests.helpers import cast
from training.preferences import PreferenceFilters, preference_pairs

# Per battle (by prompt): (annotator, side, cast too fast). The comment gives the verdict.
VOTES = [
    [("ann0", "right", False), ("ann1", "tie", False), ("ann2", "tie", False)],  # right: a tie voter prefers neither
    [("ann0", "left", False), ("ann1", "left", False), ("ann2", "right", False)],  # left
    [("ann0", "both_bad", False), ("ann1", "both_bad", False), ("ann2", "left", False)],  # both_bad
    [("ann0", "left", False), ("ann1", "right", True), ("ann2", "right", True)],  # left: flagged votes do not count
    [("ann0", "right", False), ("ann1", "tie", False), ("cheat", "left", False)],  # right: a banned annotator's vote does not count
    [("ann0", "left", False), ("ann1", "left", False), ("ann2", "left", False)],  # not blind: counted nowhere
]
EXPECTED = ["right", "left", "both_bad", "left", "right"]
NAMED = 5


def _vote_set(engine) -> list[int]:
    """Two models write one text each for six prompts; the pool forms six battles (the sixth names a
    model); the votes of VOTES are cast and ``cheat`` is banned. Returns the battle ids by prompt."""
    from sqlmodel import select

    from arena.pool import form_battles
    from storage.catalog import add_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation, set_in_pool
    from storage.models import Battle
    from storage.users import add_user

    with session_scope(engine) as session:
        models = [add_model(session, name=name, backend="local") for name in ("alpha", "beta")]
        users = {name: add_user(session, name=name, role="annotator").id for name in ("ann0", "ann1", "ann2", "cheat")}
        prompts = []
        for i in range(len(VOTES)):  # the texts name no model (the pool checks the registered names too)
            prompt, _ = get_or_add_prompt(session, text=f"Write story {i} about tea.", category="story", target_words=50)
            prompts.append(prompt.id)
            for model, word in zip(models, ("leaf", "cup")):
                answer = ("As Claude I wrote this. " if i == NAMED and word == "leaf" else "") + f"tea {word} " * 40
                gen = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={})
                finish_generation(session, generation_id=gen.id, status="complete", answer=answer,
                                  answer_words=len(answer.split()), finish_reason="stop")
                set_in_pool(session, generation_id=gen.id)
        form_battles(session, seed=7)
    with session_scope(engine) as session:
        by_prompt = {b.prompt_id: b.id for b in session.exec(select(Battle))}
        battle_ids = [by_prompt[p] for p in prompts]
        for battle_id, votes in zip(battle_ids, VOTES):
            for name, side, too_fast in votes:
                cast(session, battle_id=battle_id, annotator_id=users[name], winner=side, too_fast=too_fast)
    with session_scope(engine) as session:
        ban(session, name="cheat", reason="votes one side always")
    return battle_ids


def test_one_vote_set_gives_one_verdict_per_battle_to_every_reader(engine):
    battles = _vote_set(engine)
    expected = dict(zip(battles, EXPECTED))
    with session_scope(engine) as session:
        tallies = battle_tallies(session)
        owner = dict(zip(tallies["battle_id"], tallies["verdict"]))
        crosscheck = human_verdicts(session)
        pairs, _ = preference_pairs(session, filters=PreferenceFilters(), both_bad=True)
        with_named, _ = preference_pairs(session, filters=PreferenceFilters(include_named=True), both_bad=True)
    _, rated = leaderboard_from_db(engine, bootstrap=0)

    assert owner == expected
    assert crosscheck == {b: "tie" if v == "both_bad" else v for b, v in expected.items()}
    assert dict(zip(pairs["battle_id"], pairs["verdict"])) == {b: v for b, v in expected.items() if v != "tie"}
    per_battle = rated.groupby("battle_id").size().to_dict()  # the leaderboard rates one row per vote:
    assert per_battle == dict(zip(tallies["battle_id"], tallies["annotators"]))  # the same battles and votes
    assert dict(zip(with_named["battle_id"], with_named["verdict"]))[battles[NAMED]] == "left"  # kept only when asked


def test_the_annotator_report_reads_every_vote(engine):
    """Reliability is about the annotators, not about blindness: the report counts the flagged,
    the banned and the named battles' votes too (and marks the ban)."""
    _vote_set(engine)
    report = annotators_from_db(engine)
    votes = {row["annotator"]: row["votes"] for row in report["annotators"]}
    assert votes == {"ann0": 6, "ann1": 6, "ann2": 5, "cheat": 1}
    assert report["battles_with_several_votes"] == 6
