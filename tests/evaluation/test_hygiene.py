"""Vote hygiene: a planted rigger among honest simulated annotators is found; bans are recorded, reversible and
leave ratings; bad input is one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from evaluation.hygiene import hygiene_report, skew_scores
from evaluation.ratings import compute_ratings
from lwz_cli.main import main
from storage.engine import session_scope
from storage.counted_votes import CountedVotes
from storage.votes import banned_annotator_ids, votes_table
from tests.helpers import cast, run_json
from tests.storage.helpers import seed_arena

STRENGTH = {"target": -0.5, "m1": 0.3, "m2": 0.0, "m3": 0.2}


def simulated_votes(seed: int = 0) -> pd.DataFrame:
    """400 battles, each voted by 3 of 20 honest annotators (Bradley–Terry with STRENGTH); a rigger
    votes for ``target`` on 80 of its battles; ``lefty`` votes honestly but picks the left side 85% of the time."""
    rng = np.random.default_rng(seed)
    names = list(STRENGTH)
    rows, vote_id = [], 0
    for battle in range(400):
        a, b = rng.choice(len(names), size=2, replace=False)
        p = 1 / (1 + np.exp(-(STRENGTH[names[a]] - STRENGTH[names[b]])))
        voters = [f"honest{i:02d}" for i in rng.choice(20, size=3, replace=False)]
        if battle % 2 == 0:
            voters.append("lefty")
        for voter in voters:
            if voter == "lefty" and rng.random() < 0.85:
                winner = "model_a"
            else:
                winner = "model_a" if rng.random() < p else "model_b"
            rows.append((vote_id, battle, voter, names[a], names[b], winner))
            vote_id += 1
        if "target" in (names[a], names[b]) and sum(r[2] == "rigger" for r in rows) < 80:
            rows.append((vote_id, battle, "rigger", names[a], names[b], "model_a" if names[a] == "target" else "model_b"))
            vote_id += 1
    return pd.DataFrame(rows, columns=["vote_id", "battle_id", "annotator", "model_a", "model_b", "winner"])


def test_a_planted_rigger_is_found_and_honest_annotators_are_not_flagged():
    votes = simulated_votes()
    report = {r["annotator"]: r for r in hygiene_report(votes, flags_by_vote={0: ["too_fast"]})}
    rigger = report["rigger"]
    assert rigger["votes"] == 80 and rigger["skew_model"] == "target" and rigger["skew_z"] > 5
    assert rigger["flags"] == ["favours target"]
    assert rigger["agreement_z"] == min(r["agreement_z"] for r in report.values())  # and agrees least with the rest
    assert report["lefty"]["flags"] == ["side bias (left)"] and report["lefty"]["side_z"] > 5
    honest = [r for name, r in report.items() if name.startswith("honest")]
    assert len(honest) == 20 and all(r["flags"] == [] for r in honest), [r["flags"] for r in honest]
    # 80 rigged votes among 1,400 lift target by more than 30 points; leaving the rigger out undoes it.
    assert by_rating(votes)["target"] > by_rating(votes[votes["annotator"] != "rigger"])["target"] + 30


def by_rating(frame):
    return compute_ratings(frame, bootstrap=0).table.set_index("model")["rating"]


def test_too_fast_share_is_flagged_and_skew_needs_votes():
    votes = simulated_votes(seed=1)
    slow = votes[votes["annotator"] == "honest03"]["vote_id"]
    flags = {int(v): ["too_fast"] for v in slow[: int(len(slow) * 0.6)]}
    report = {r["annotator"]: r for r in hygiene_report(votes, flags_by_vote=flags)}
    assert report["honest03"]["too_fast_share"] == pytest.approx(int(len(slow) * 0.6) / len(slow))
    assert "too fast" in report["honest03"]["flags"]
    assert skew_scores(votes[votes["winner"] == "tie"]) == {}


def test_ban_leaves_ratings_and_is_reversible(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    seeded = seed_arena(engine, battles=6, annotators=2)
    with session_scope(engine) as session:
        from storage.users import add_user

        add_user(session, name="boss", role="admin")
        for battle_id in seeded.battle_ids:
            cast(session, battle_id=battle_id, annotator_id=seeded.annotator_ids[0], winner="left")
            cast(session, battle_id=battle_id, annotator_id=seeded.annotator_ids[1], winner="right")
    def n_alpha():
        rows = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "0", "--min-battles", "1"])
        return {r["model"]: r for r in rows}["alpha"]["n"]

    assert n_alpha() == 12
    done = run_json(capsys, ["--db", url, "annotators", "ban", "ann1", "--reason", "votes right always", "--by", "boss", "--json"])
    assert done["annotator"] == "ann1" and done["by"] == "boss"
    assert n_alpha() == 6
    with session_scope(engine) as session:
        assert banned_annotator_ids(session) == {seeded.annotator_ids[1]}
        assert len(votes_table(session)) == 6 and len(votes_table(session, counted=CountedVotes(include_banned=True))) == 12
    report = run_json(capsys, ["--db", url, "annotators", "--json"])
    assert {r["annotator"]: r["banned"] for r in report["annotators"]} == {"ann0": False, "ann1": True}
    assert main(["--db", url, "annotators"]) == 0 and "BANNED" in capsys.readouterr().out
    assert main(["--db", url, "annotators", "ban", "ann1"]) == 2
    assert "already banned" in capsys.readouterr().err
    run_json(capsys, ["--db", url, "annotators", "unban", "ann1", "--json"])
    assert n_alpha() == 12
    history = run_json(capsys, ["--db", url, "annotators", "bans", "--json"])
    assert len(history) == 1 and history[0]["reason"] == "votes right always" and history[0]["by"] == "boss"
    assert history[0]["lifted_at"] is not None
    assert main(["--db", url, "annotators", "ban", "ann0", "--by", "ann1"]) == 2
    assert "only an admin may ban" in capsys.readouterr().err


def test_banning_an_unknown_annotator_is_one_line(sqlite_engine):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    seed_arena(sqlite_engine, battles=1, annotators=1)
    proc = subprocess.run([sys.executable, "-m", "lwz_cli.main", "--db", url, "annotators", "ban", "nobody"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == ["lwz: error: no such annotator: 'nobody'"]


def test_panel_bans_as_an_admin_and_shows_flags(sqlite_engine):
    from webapp.annotators_panel import annotators_view, ban_action

    seeded = seed_arena(sqlite_engine, battles=2, annotators=2)
    with session_scope(sqlite_engine) as session:
        from storage.users import add_user

        add_user(session, name="boss", role="admin")
        cast(session, battle_id=seeded.battle_ids[0], annotator_id=seeded.annotator_ids[0], winner="left")
    assert "banned" in ban_action(sqlite_engine, admin="boss", name="ann0", reason="test", lift=False)
    view = annotators_view(sqlite_engine)
    assert view["annotators"].set_index("annotator").loc["ann0", "banned"] == "banned"
    assert "No annotator is flagged" in view["summary"]
    assert "lifted" in ban_action(sqlite_engine, admin="boss", name="ann0", reason="", lift=True)
    from core.errors import UserError

    with pytest.raises(UserError, match="type the annotator"):
        ban_action(sqlite_engine, admin="boss", name=" ", reason="", lift=False)
