"""Style control: voters who favour length, features from texts or columns, both interval kinds, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from evaluation import bt
from evaluation.battles import collapse, validate_battles
from evaluation.ratings import compute_ratings
from evaluation.style import STYLE_FEATURES, answer_features, normalised_difference

ELO = 400.0 / math.log(10.0)
QUALITY = {"best": 0.5, "mid": 0.0, "verbose": -0.5}
LENGTH = {"best": 600.0, "mid": 900.0, "verbose": 2000.0}


def length_loving_battles(n: int, seed: int) -> pd.DataFrame:
    """Battles where voters reward length (4 per unit of (a-b)/(a+b)) more than quality differs.

    ``verbose`` is the worst writer but the longest; markdown counts are random and do not sway votes.
    """
    rng = np.random.default_rng(seed)
    names = np.array(list(QUALITY))
    a = rng.integers(0, 3, size=n)
    b = (a + rng.integers(1, 3, size=n)) % 3
    quality = np.array(list(QUALITY.values()))
    length = np.array(list(LENGTH.values()))
    words_a, words_b = (np.round(length[s] * rng.lognormal(0.0, 0.2, n)) for s in (a, b))
    p = 1.0 / (1.0 + np.exp(-(quality[a] - quality[b] + 4.0 * normalised_difference(words_a, words_b))))
    frame = pd.DataFrame({"model_a": names[a], "model_b": names[b],
                          "winner": np.where(rng.random(n) < p, "model_a", "model_b"),
                          "words_a": words_a, "words_b": words_b})
    for feature in ("headers", "lists", "bold"):
        frame[f"{feature}_a"], frame[f"{feature}_b"] = rng.poisson(2.0, n), rng.poisson(2.0, n)
    frame["repetition_a"], frame["repetition_b"] = rng.uniform(0, 0.1, n), rng.uniform(0, 0.1, n)
    return frame


def test_length_loving_voters_rank_the_best_writer_first_only_under_control():
    frame = length_loving_battles(4000, seed=3)
    plain = compute_ratings(frame, bootstrap=0)
    assert list(plain.table["model"]) == ["verbose", "mid", "best"]  # length wins without control
    controlled = compute_ratings(frame, bootstrap=0, style_control=True)
    t = controlled.table.set_index("model")
    assert list(controlled.table["model"]) == ["best", "mid", "verbose"]
    assert t.loc["best", "rank"] == 1 and t.loc["verbose", "rank"] == 3
    assert t.loc["best", "rank_uncontrolled"] == 3 and t.loc["best", "rank_change"] == 2
    assert t.loc["verbose", "rank_change"] == -2
    assert t.loc["verbose", "rating_uncontrolled"] == pytest.approx(plain.table.set_index("model").loc["verbose", "rating"])
    # The true quality gap best - verbose is 1.0 natural-log units.
    assert t.loc["best", "rating"] - t.loc["verbose", "rating"] == pytest.approx(ELO * 1.0, abs=60)
    coefs = controlled.style_coefs
    assert list(coefs) == list(STYLE_FEATURES)
    assert coefs["length"] > 150 and all(abs(coefs[f]) < 25 for f in ("headers", "lists", "bold", "repetition"))


@pytest.mark.parametrize("interval", ["bootstrap", "sandwich"])
def test_both_interval_kinds_work_with_style_control(interval):
    frame = length_loving_battles(1500, seed=5)
    result = compute_ratings(frame, bootstrap=60 if interval == "bootstrap" else 0, interval=interval, style_control=True,
                             style_features=["length", "bold"], seed=2)
    assert result.interval == interval and list(result.style_coefs) == ["length", "bold"]
    t = result.table
    assert (t["ci_low"] < t["rating"]).all() and (t["rating"] < t["ci_high"]).all()
    width = (t["ci_high"] - t["ci_low"]).to_numpy()
    assert np.all((width > 20) & (width < 400))
    # Controlling for a covariate that explains votes widens the strengths' intervals.
    plain = compute_ratings(frame, bootstrap=60 if interval == "bootstrap" else 0, interval=interval, seed=2)
    assert width.mean() > (plain.table["ci_high"] - plain.table["ci_low"]).mean()


def test_features_from_texts_match_columns():
    text_long = "# Title\n\n- one point here\n- two points here\n\nSome **bold** words and **more bold** words.\n1) last"
    features = answer_features(text_long)
    assert features == {"length": 15.0, "headers": 1.0, "lists": 3.0, "bold": 2.0, "repetition": 0.0}
    assert answer_features("__strong__ and ** not bold **")["bold"] == 1
    assert answer_features("la la la la la la la la")["repetition"] == pytest.approx(7 / 8)  # overlapping spans
    assert answer_features("#hashtag is not a header\n* \n1.5 is no item")["headers"] == 0
    rng = np.random.default_rng(0)
    rows = []

    def text():  # distinct words (no repetition), random markdown
        marks = ["## Head\n", "- item\n", "**bold** "]
        chosen = "".join(m for m in marks if rng.random() < 0.5)
        return chosen + " ".join(f"w{i}" for i in range(int(rng.integers(5, 50))))

    for _ in range(120):
        a, b = rng.choice(["x", "y"], size=2, replace=False)
        rows.append({"model_a": a, "model_b": b, "winner": rng.choice(["model_a", "model_b", "tie"]),
                     "text_a": text(), "text_b": text()})
    frame = pd.DataFrame(rows)
    from_text = compute_ratings(frame, bootstrap=0, style_control=True, min_battles=1)
    computed = frame.copy()
    for side in ("a", "b"):
        feats = [answer_features(t) for t in frame[f"text_{side}"]]
        for feature in STYLE_FEATURES:
            computed[f"{'words' if feature == 'length' else feature}_{side}"] = [f[feature] for f in feats]
    from_columns = compute_ratings(computed.drop(columns=["text_a", "text_b"]), bootstrap=0, style_control=True, min_battles=1)
    assert from_text.style_coefs == pytest.approx(from_columns.style_coefs)
    assert list(from_text.style_coefs) == ["length", "headers", "lists", "bold"]  # no text repeats
    assert any("never differ" in w and "repetition" in w for w in from_text.warnings)


def test_missing_style_columns_list_what_was_expected():
    frame = length_loving_battles(50, seed=1).drop(columns=["bold_a", "lists_b"])
    with pytest.raises(UserError, match=r"needs the column\(s\) lists_b, bold_a \(expected words_a, words_b, "
                                        r"headers_a, headers_b, lists_a, lists_b, bold_a, bold_b, repetition_a, repetition_b\)"):
        compute_ratings(frame, style_control=True)
    with pytest.raises(UserError, match="unknown style feature.*emoji.*choose from length, headers"):
        compute_ratings(frame, style_control=True, style_features=["length", "emoji"])
    with pytest.raises(UserError, match="already includes length"):
        compute_ratings(frame, style_control=True, length_control=True)
    bad = length_loving_battles(20, seed=1)
    bad["headers_a"] = bad["headers_a"].astype(object)
    bad.loc[3, "headers_a"] = "many"
    with pytest.raises(UserError, match="row 4: headers_a must be a non-negative number"):
        compute_ratings(bad, style_control=True)


def test_batched_refits_match_single_fits():
    frame = validate_battles(length_loving_battles(600, seed=9))
    frame.loc[frame.index[::6], "winner"] = "tie"
    from evaluation.style import feature_columns, style_covariates

    z, _, _, _ = style_covariates(feature_columns(frame, ["length", "headers"]), ["length", "headers"])
    table = collapse(frame, covariates=z)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(table.total, (table.counts / table.total).ravel(), size=5).reshape((5,) + table.counts.shape)
    for davidson in (False, True):
        batch = bt.fit_many(table, counts, davidson=davidson)
        for i in range(5):
            single = bt.fit(table.with_counts(counts[i]), davidson=davidson).params
            assert np.allclose(batch[i], single, atol=1e-6)
