"""Rating math: hand-computed cases, recovery of known strengths, interval coverage, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation import bt
from evaluation.battles import collapse, validate_battles
from evaluation.elo import online_elo
from evaluation.ratings import (
    bootstrap_thetas, compute_ratings, predicted_matrix, rank_by_intervals, ratings_by_category, win_rate_matrix,
)
from core.errors import UserError

ELO = 400.0 / math.log(10.0)


def battles(rows):
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def synthetic(strength, n, rng, *, tie_share=0.1, names=None):
    """Battles drawn from BT with known natural-log strengths; ties replace a share of decisive results."""
    m = len(strength)
    a = rng.integers(0, m, size=n)
    b = (a + rng.integers(1, m, size=n)) % m
    p = 1.0 / (1.0 + np.exp(-(np.asarray(strength)[a] - np.asarray(strength)[b])))
    u, t = rng.random(n), rng.random(n)
    winner = np.where(t < tie_share, "tie", np.where(u < p, "model_a", "model_b"))
    names = names or [f"m{i}" for i in range(m)]
    return pd.DataFrame({"model_a": np.array(names)[a], "model_b": np.array(names)[b], "winner": winner})


def by_model(result):
    return result.table.set_index("model")


# --- hand-computed cases -------------------------------------------------------------------

def test_single_pair_rating_gap_is_log_odds():
    # x won 3 of 4: the MLE of P(x beats y) is 3/4, so the gap is 400*log10(3) Elo points.
    frame = battles([("x", "y", "model_a"), ("y", "x", "model_b"), ("x", "y", "model_a"), ("x", "y", "model_b")])
    result = compute_ratings(frame, bootstrap=0, min_battles=1)
    t = by_model(result)
    assert t.loc["x", "rating"] - t.loc["y", "rating"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert t.loc["x", "rating"] + t.loc["y", "rating"] == pytest.approx(2000, abs=1e-6)  # mean anchored at 1000
    assert (t.loc["x", "wins"], t.loc["x", "losses"], t.loc["x", "n"]) == (3, 1, 4)


def test_ties_count_half_a_win():
    # x: one win and two ties against y -> credit 2 vs 1 -> odds 2.
    frame = battles([("x", "y", "model_a"), ("x", "y", "tie"), ("y", "x", "tie")])
    t = by_model(compute_ratings(frame, bootstrap=0, min_battles=1))
    assert t.loc["x", "rating"] - t.loc["y", "rating"] == pytest.approx(400 * math.log10(2), abs=1e-3)
    assert t.loc["x", "ties"] == 2


def test_both_bad_is_a_tie_or_dropped():
    frame = battles([("x", "y", "model_a"), ("x", "y", "both_bad"), ("x", "y", "both_bad")])
    as_tie = by_model(compute_ratings(frame, bootstrap=0, min_battles=1))
    assert as_tie.loc["x", "rating"] - as_tie.loc["y", "rating"] == pytest.approx(400 * math.log10(2), abs=1e-3)
    dropped = collapse(validate_battles(frame), both_bad="drop")
    assert dropped.total == 1


def test_davidson_single_pair_matches_the_empirical_shares():
    # 2 wins, 1 loss, 2 ties: a saturated model, so P(a)=2/5, P(b)=1/5, P(tie)=2/5 exactly:
    # exp(delta) = P(a)/P(b) = 2 and nu = P(tie)/sqrt(P(a)P(b)) = 0.4/sqrt(0.08).
    frame = battles([("x", "y", "model_a")] * 2 + [("x", "y", "model_b")] + [("x", "y", "tie")] * 2)
    result = compute_ratings(frame, ties="davidson", bootstrap=0, min_battles=1)
    t = by_model(result)
    assert t.loc["x", "rating"] - t.loc["y", "rating"] == pytest.approx(400 * math.log10(2), abs=1e-2)
    assert result.tie_nu == pytest.approx(0.4 / math.sqrt(0.08), rel=1e-4)
    # Its predicted win probability counts a tie as half: (0.4 + 0.2) = 0.6.
    assert predicted_matrix(result).loc["x", "y"] == pytest.approx(0.6, abs=1e-4)


def test_win_rate_and_predicted_matrices():
    frame = battles([("x", "y", "model_a"), ("y", "x", "model_b"), ("x", "y", "model_b"), ("x", "z", "tie"),
                     ("z", "y", "model_a")])
    result = compute_ratings(frame, bootstrap=0, min_battles=1)
    rates = win_rate_matrix(result)
    assert rates.loc["x", "y"] == pytest.approx(2 / 3) and rates.loc["y", "x"] == pytest.approx(1 / 3)
    assert rates.loc["x", "z"] == pytest.approx(0.5) and rates.loc["z", "y"] == pytest.approx(1.0)
    assert np.isnan(rates.loc["x", "x"])
    predicted = predicted_matrix(result)
    t = by_model(result)
    gap = (t.loc["x", "rating"] - t.loc["y", "rating"]) / 400
    assert predicted.loc["x", "y"] == pytest.approx(1 / (1 + 10 ** -gap), abs=1e-9)
    assert predicted.loc["x", "y"] + predicted.loc["y", "x"] == pytest.approx(1.0)


def test_rank_rule():
    # c's interval overlaps b's but lies wholly below a's: a=1, b=1 (overlaps a), c=2, d below all three = 4.
    low = [1100, 1050, 990, 800]
    high = [1200, 1150, 1060, 900]
    assert rank_by_intervals(low, high) == [1, 1, 2, 4]


def test_online_elo_hand_computed():
    # Equal ratings: expected score 0.5, so a win moves each side by K/2 = 2 points.
    out = online_elo(np.array([0]), np.array([1]), np.array([0]), 2, k=4.0)
    assert out.tolist() == pytest.approx([1002.0, 998.0])
    tie = online_elo(np.array([0, 0]), np.array([1, 1]), np.array([0, 2]), 2, k=4.0)
    expected = 1.0 / (1.0 + 10 ** ((998 - 1002) / 400))
    assert tie[0] == pytest.approx(1002 + 4 * (0.5 - expected))


def test_anchor_at_named_model():
    frame = battles([("x", "y", "model_a")] * 3 + [("x", "y", "model_b")] + [("y", "z", "model_a")] * 2
                    + [("y", "z", "model_b")])
    t = by_model(compute_ratings(frame, bootstrap=0, anchor="y", anchor_rating=1200, min_battles=1))
    assert t.loc["y", "rating"] == pytest.approx(1200)
    assert t.loc["y", "sandwich_low"] == pytest.approx(1200)  # the anchor has no uncertainty by construction
    with pytest.raises(UserError, match="anchor model 'w'"):
        compute_ratings(frame, bootstrap=0, anchor="w")


# --- recovery and coverage on synthetic battles --------------------------------------------

def test_true_order_is_recovered():
    rng = np.random.default_rng(7)
    strength = [1.2, 0.7, 0.2, -0.3, -0.8, -1.3]
    result = compute_ratings(synthetic(strength, 6000, rng), bootstrap=50, seed=1)
    assert list(result.table["model"]) == [f"m{i}" for i in range(6)]
    assert list(result.table["rank"]) == [1, 2, 3, 4, 5, 6]
    assert result.table["reliable"].all()
    elo = by_model(compute_ratings(synthetic(strength, 6000, rng), method="elo", bootstrap=0, seed=1))
    assert elo["rating"].idxmax() == "m0" and elo["rating"].idxmin() == "m5"


@pytest.mark.parametrize("interval", ["bootstrap", "sandwich"])
def test_intervals_cover_the_true_rating(interval):
    # 30 independent data sets x 5 models = 150 intervals; 95% intervals should cover >= 90%.
    strength = np.array([0.6, 0.3, 0.0, -0.2, -0.7])
    true_points = ELO * (strength - strength.mean()) + 1000
    rng = np.random.default_rng(2024)
    covered = total = 0
    for draw in range(30):
        frame = synthetic(strength, 800, rng, tie_share=0.0)  # pure BT: the true rating is known exactly
        t = by_model(compute_ratings(frame, bootstrap=60 if interval == "bootstrap" else 0, seed=draw, interval=interval))
        for i, points in enumerate(true_points):
            covered += t.loc[f"m{i}", "ci_low"] <= points <= t.loc[f"m{i}", "ci_high"]
            total += 1
    assert covered / total >= 0.90, f"coverage {covered}/{total}"


def test_multinomial_bootstrap_matches_row_resampling():
    # Resampling rows and drawing counts from Multinomial(N, counts/N) give the same distribution:
    # compare the bootstrap spread of each rating, row resampling done the direct way.
    rng = np.random.default_rng(3)
    frame = validate_battles(synthetic([0.5, 0.0, -0.5, 0.2], 600, rng))
    table = collapse(frame)
    start = bt.fit(table)
    fast = bootstrap_thetas(table, start, bootstrap=400, rng=np.random.default_rng(1))
    direct = np.empty((400, 4))
    pick_rng = np.random.default_rng(2)
    for i in range(400):
        sample = frame.iloc[pick_rng.integers(0, len(frame), size=len(frame))]
        direct[i] = bt.fit(collapse(sample)).theta
    ratio = fast.std(axis=0) / direct.std(axis=0)
    assert np.all((ratio > 0.85) & (ratio < 1.18)), ratio
    assert np.allclose(fast.mean(axis=0), direct.mean(axis=0), atol=0.05)


def test_length_control_separates_length_from_quality():
    # Two equally good models; "long" writes twice as much, and annotators prefer longer answers.
    rng = np.random.default_rng(11)
    n = 4000
    names = np.array(["long", "short", "mid"])
    a = rng.integers(0, 3, size=n)
    b = (a + rng.integers(1, 3, size=n)) % 3
    length = np.array([1000.0, 500.0, 700.0])
    words_a, words_b = length[a] * rng.uniform(0.8, 1.2, n), length[b] * rng.uniform(0.8, 1.2, n)
    z = (words_a - words_b) / (words_a + words_b)
    p = 1.0 / (1.0 + np.exp(-3.0 * z))
    winner = np.where(rng.random(n) < p, "model_a", "model_b")
    frame = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner, "words_a": words_a, "words_b": words_b})
    plain = by_model(compute_ratings(frame, bootstrap=0))
    controlled = compute_ratings(frame, bootstrap=0, length_control=True)
    lc = by_model(controlled)
    assert plain.loc["long", "rating"] - plain.loc["short", "rating"] > 100
    assert abs(lc.loc["long", "rating"] - lc.loc["short", "rating"]) < 40
    assert controlled.length_coef == pytest.approx(3.0 * ELO, rel=0.2)
    with pytest.raises(UserError, match="words_a"):
        compute_ratings(frame.drop(columns=["words_a"]), length_control=True)


def test_ratings_per_category():
    rows = [("x", "y", "model_a")] * 8 + [("x", "y", "model_b")] * 2
    frame = battles(rows + [("x", "y", "model_b")] * 8 + [("x", "y", "model_a")] * 2)
    frame["category"] = ["poems"] * 10 + ["emails"] * 10
    results = ratings_by_category(frame, bootstrap=0, min_battles=1)
    assert list(results) == ["emails", "poems"]
    assert results["poems"].table["model"].iloc[0] == "x"
    assert results["emails"].table["model"].iloc[0] == "y"


# --- bad input -------------------------------------------------------------------------------

def test_unknown_winner_names_the_row():
    frame = battles([("x", "y", "model_a"), ("x", "y", "tie"), ("x", "y", "left")])
    with pytest.raises(UserError, match=r"row 3: unknown winner label 'left'"):
        compute_ratings(frame)


def test_missing_column_and_self_battle():
    with pytest.raises(UserError, match="lacks the column"):
        compute_ratings(pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}))
    with pytest.raises(UserError, match="row 2: a model cannot battle itself"):
        compute_ratings(battles([("x", "y", "tie"), ("x", "x", "tie")]))


def test_model_without_battles_is_listed_not_rated():
    frame = battles([("x", "y", "model_a"), ("x", "y", "model_b")] * 15)
    result = compute_ratings(frame, bootstrap=20, models=["x", "y", "newcomer"])
    row = by_model(result).loc["newcomer"]
    assert row["n"] == 0 and np.isnan(row["rating"]) and pd.isna(row["rank"]) and not row["reliable"]
    assert result.table["model"].iloc[-1] == "newcomer"
    record = [r for r in result.records() if r["model"] == "newcomer"][0]
    assert record["rating"] is None and record["rank"] is None
    assert any("newcomer" in w for w in result.warnings)


def test_disconnected_graph_warns_and_rates_each_part():
    rng = np.random.default_rng(5)
    left = synthetic([0.5, 0.0, -0.5], 600, rng, names=["a1", "a2", "a3"])
    right = synthetic([0.3, -0.3], 400, rng, names=["b1", "b2"])
    result = compute_ratings(pd.concat([left, right], ignore_index=True), bootstrap=30)
    assert any("2 separate parts" in w for w in result.warnings)
    t = by_model(result)
    assert t.loc[["a1", "a2", "a3"], "component"].nunique() == 1
    assert t.loc["a1", "component"] != t.loc["b1", "component"]
    # Each part is anchored on its own (mean 1000) and ranked on its own.
    assert t.loc[["a1", "a2", "a3"], "rating"].mean() == pytest.approx(1000)
    assert t.loc[["b1", "b2"], "rating"].mean() == pytest.approx(1000)
    assert t.loc["a1", "rank"] == 1 and t.loc["b1", "rank"] == 1
    assert np.isnan(predicted_matrix(result).loc["a1", "b1"])


def test_too_few_votes_get_no_rating():
    # One vote used to show 2044 against -44 with zero-width intervals: now no number at all.
    one = compute_ratings(battles([("x", "y", "model_a")]), bootstrap=20)
    assert one.table["rating"].isna().all() and one.table["ci_low"].isna().all() and one.table["rank"].isna().all()
    assert one.table["needs"].tolist() == [19, 19] and not one.table["reliable"].any()
    assert [r["rating"] for r in one.records()] == [None, None]
    assert any("fewer than 20 battles, not rated: x needs 19 more, y needs 19 more" in w for w in one.warnings)
    # With the threshold met, the same models are rated; in a mixed table only the short one is blank.
    rng = np.random.default_rng(4)
    mixed = pd.concat([synthetic([0.4, 0.0, -0.4], 300, rng), battles([("m0", "rare", "model_a")] * 3)])
    t = by_model(compute_ratings(mixed, bootstrap=20, min_battles=10))
    assert np.isnan(t.loc["rare", "rating"]) and t.loc["rare", "needs"] == 7 and pd.isna(t.loc["rare", "rank"])
    assert t.loc[["m0", "m1", "m2"], "needs"].eq(0).all() and t.loc[["m0", "m1", "m2"], "rating"].notna().all()
    assert list(compute_ratings(mixed, bootstrap=0, min_battles=10).table["model"])[-1] == "rare"
    assert by_model(compute_ratings(mixed, bootstrap=0, min_battles=3)).loc["rare", "needs"] == 0
    with pytest.raises(UserError, match="min-battles"):
        compute_ratings(mixed, min_battles=-1)
    # A perfect record has no finite maximum-likelihood strength: unreliable however many votes.
    sweep = compute_ratings(battles([("x", "y", "model_a")] * 40 + [("y", "z", "model_a"), ("z", "y", "model_a")] * 20),
                            bootstrap=20)
    assert not by_model(sweep).loc["x", "reliable"]


def test_empty_table_lists_models_unrated():
    result = compute_ratings(battles([]), bootstrap=10, models=["x"])
    assert list(result.table["model"]) == ["x"] and result.table["n"].tolist() == [0]


def test_option_errors():
    frame = battles([("x", "y", "model_a")])
    with pytest.raises(UserError, match="unknown method"):
        compute_ratings(frame, method="glicko")
    with pytest.raises(UserError, match="online Elo"):
        compute_ratings(frame, method="elo", ties="davidson")
    with pytest.raises(UserError, match="bootstrap"):
        compute_ratings(frame, bootstrap=0, interval="bootstrap")
