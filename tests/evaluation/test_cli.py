"""``lwz rate``, ``lwz leaderboard``, ``lwz annotators`` and ``lwz eval metrics`` end to end (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lwz_cli.main import main
from storage.votes import add_vote
from storage.engine import session_scope
from storage.models import Battle
from tests.helpers import run_json
from storage.users import add_user
from tests.storage.helpers import seed_arena


def battles_frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    strength = {"good": 0.8, "fair": 0.0, "poor": -0.8}
    names = list(strength)
    rows = []
    for _ in range(n):
        a, b = rng.choice(3, size=2, replace=False)
        p = 1 / (1 + np.exp(-(strength[names[a]] - strength[names[b]])))
        rows.append((names[a], names[b], "model_a" if rng.random() < p else "model_b"))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rate_reads_each_format(tmp_path, capsys, suffix):
    frame = battles_frame()
    path = tmp_path / f"battles{suffix}"
    {".csv": lambda: frame.to_csv(path, index=False), ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    rows = run_json(capsys, ["rate", str(path), "--json", "--bootstrap", "30", "--seed", "3"])
    assert [r["model"] for r in rows] == ["good", "fair", "poor"]
    assert set(rows[0]) >= {"model", "rating", "ci_low", "ci_high", "rank", "n"}
    assert all(r["ci_low"] <= r["rating"] <= r["ci_high"] for r in rows)
    assert sum(r["n"] for r in rows) == 2 * len(frame)
    again = run_json(capsys, ["rate", str(path), "--json", "--bootstrap", "30", "--seed", "3"])
    assert again == rows  # seeded


def test_rate_options_and_text_table(tmp_path, capsys):
    path = tmp_path / "b.csv"
    frame = battles_frame()
    frame.loc[::7, "winner"] = "tie"
    frame.to_csv(path, index=False)
    elo = run_json(capsys, ["rate", str(path), "--json", "--method", "elo", "--bootstrap", "10"])
    assert elo[0]["model"] == "good"
    davidson = run_json(capsys, ["rate", str(path), "--json", "--ties", "davidson", "--bootstrap", "0"])
    assert davidson[0]["model"] == "good"
    assert main(["rate", str(path), "--bootstrap", "10"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "ci_low" in out and "bootstrap 95% intervals" in out


def test_rate_bad_label_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("model_a,model_b,winner\nx,y,model_a\nx,y,draw\n")
    proc = subprocess.run([sys.executable, "-m", "lwz_cli.main", "rate", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["lwz: error: row 2: unknown winner label 'draw': expected one of model_a, model_b, tie, both_bad"]
    missing = subprocess.run([sys.executable, "-m", "lwz_cli.main", "rate", str(tmp_path / "nope.csv")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def _vote_all(engine, seeded, winners_by_annotator, flags=None):
    with session_scope(engine) as session:
        for annotator_id, winners in zip(seeded.annotator_ids, winners_by_annotator):
            for battle_id, winner in zip(seeded.battle_ids, winners):
                add_vote(session, battle_id=battle_id, annotator_id=annotator_id, winner=winner,
                         reading_seconds=30.0, flags=(flags or {}).get((annotator_id, battle_id)))


def test_leaderboard_and_annotators_from_the_database(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    seeded = seed_arena(engine, battles=6, annotators=2)
    with session_scope(engine) as session:
        add_user(session, name="spare", role="annotator")
    # alpha (left) wins 4 of 6 for ann0, 5 of 6 for ann1; ann1 flags one of its votes.
    _vote_all(engine, seeded, [["left", "left", "right", "left", "tie", "left"],
                               ["left", "left", "left", "left", "right", "left"]],
              flags={(seeded.annotator_ids[1], seeded.battle_ids[4]): ["off_topic"]})
    rows = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "20"])
    by = {r["model"]: r for r in rows}
    assert by["alpha"]["n"] == 11  # the flagged vote is left out
    assert by["alpha"]["rating"] is None and by["alpha"]["needs"] == 9  # 11 votes are too few for a rating
    rows = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "20", "--min-battles", "5"])
    by = {r["model"]: r for r in rows}
    assert by["alpha"]["rating"] > by["beta"]["rating"] and by["alpha"]["needs"] == 0
    flagged = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "20", "--include-flagged"])
    assert {r["model"]: r for r in flagged}["alpha"]["n"] == 12
    by_cat = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "0", "--category", "cat0"])
    assert {r["model"]: r for r in by_cat}["alpha"]["n"] == 5  # battles 0, 2, 4 twice, less the flagged vote
    # A battle whose text names a model is not blind: left out of the ratings.
    with session_scope(engine) as session:
        battle = session.get(Battle, seeded.battle_ids[0])
        battle.extra = {"names_model": True}
        session.add(battle)
    blind = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "0"])
    assert {r["model"]: r for r in blind}["alpha"]["n"] == 9
    length = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "0", "--length-control"])
    assert {r["model"] for r in length} == {"alpha", "beta"}
    style = run_json(capsys, ["--db", url, "leaderboard", "--json", "--bootstrap", "0", "--style-control", "--min-battles", "1"])
    assert {r["model"] for r in style["ratings"]} == {"alpha", "beta"} and "rank_change" in style["ratings"][0]
    assert list(style["style_coefficients"]) == ["length"]  # no headers, lists or bold; equally repetitive

    report = run_json(capsys, ["--db", url, "annotators", "--json"])
    names = {a["annotator"]: a for a in report["annotators"]}
    assert names["ann0"]["votes"] == 6 and names["ann0"]["median_reading_seconds"] == 30.0
    assert names["ann1"]["left_share"] == pytest.approx(5 / 6)
    pair = report["pairs"][0]
    assert (pair["annotator_1"], pair["annotator_2"], pair["shared"]) == ("ann0", "ann1", 6)
    assert pair["agreement"] == pytest.approx(4 / 6)
    assert report["battles_with_several_votes"] == 6 and report["alpha"] is not None


def test_leaderboard_on_an_empty_database_lists_models(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    seed_arena(engine, battles=1, annotators=1)
    rows = run_json(capsys, ["--db", url, "leaderboard", "--json"])
    assert {r["model"] for r in rows} == {"alpha", "beta"} and all(r["rating"] is None for r in rows)


def test_eval_metrics_from_file_and_db(tmp_path, capsys, sqlite_engine):
    path = tmp_path / "outputs.jsonl"
    rows = [
        {"id": "ok", "model": "m", "prompt": "Write about tea gardens.", "length": 6,
         "text": "<think>plan</think>\n<answer>Tea gardens climb green hills slowly.</answer>"},
        {"id": "loop", "model": "m", "prompt": "Write about tea gardens.", "target": 100,
         "think": "", "answer": "tea tea tea tea tea tea tea tea"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = run_json(capsys, ["eval", "metrics", str(path), "--json", "--no-embeddings"])
    first, second = out["rows"]
    assert first["format_valid"] is True and first["words"] == 6 and first["length_score"] == 100.0
    assert second["format_valid"] is False and second["words"] == 8  # an empty plan is no plan
    assert second["distinct_2"] == pytest.approx(1 / 7, abs=1e-4) and second["longest_repeat"] == 7
    assert out["summary"][0]["texts"] == 2
    url = sqlite_engine.url.render_as_string(hide_password=False)
    seed_arena(sqlite_engine, battles=2, annotators=1)
    db = run_json(capsys, ["--db", url, "eval", "metrics", "--db", "--json", "--no-embeddings"])
    assert len(db["rows"]) == 4 and {s["model"] for s in db["summary"]} == {"alpha", "beta"}
    assert all(r["format_valid"] is False for r in db["rows"])  # the seeded answers have no plan
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    assert main(["eval", "metrics", str(bad), "--no-embeddings"]) == 2
