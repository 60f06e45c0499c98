"""Interval calibration: 95% intervals must cover the truth about 95% of the time, and be as wide as the spread.

A check that only catches intervals that are too narrow lets through sandwich intervals three
times too wide, or a bootstrap at 99% instead of 95%. So this test draws many data sets from a
known Bradley–Terry model (with and without a style covariate that sways voters), rates each one
through :func:`evaluation.ratings.compute_ratings`, and checks, for the bootstrap and the
sandwich intervals alike:

* coverage of the true ratings between 92% and 98%;
* mean width within 15% of ``2 * 1.96 * sd``, the sd being that of the point estimates across
  the data sets (the width an exact 95% interval would have).

Sizes, chosen so that the test is both sharp and quick (about 10 s on a loaded two-core machine):
200 data sets x 5 models = 1,000 intervals per kind, so the coverage has a standard error of about
0.7 points (92–98% is more than 4 standard errors either side of 95%) and the spread of the
estimates a relative standard error of 5% (the 15% band is 3 of them). Each data set has 600
battles; the bootstrap uses 200 resamples, all refitted at once (``evaluation.bt.fit_many``).
The style covariates take few distinct values, so the battles collapse into a small count table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation.ratings import Z95, compute_ratings

ELO = 400.0 / math.log(10.0)
STRENGTH = np.array([0.6, 0.3, 0.0, -0.2, -0.7])
TRUE = ELO * (STRENGTH - STRENGTH.mean()) + 1000.0
NAMES = np.array([f"m{i}" for i in range(len(STRENGTH))])
DATA_SETS, BATTLES, BOOTSTRAP = 200, 600, 200


def draw(rng, *, style: bool) -> pd.DataFrame:
    """One data set. With ``style``, answers vary in length (3 levels around a per-model base) and in
    bold (0 or 1); voters reward length (1.5 per unit of (a-b)/(a+b)) and ignore bold."""
    m = len(STRENGTH)
    a = rng.integers(0, m, size=BATTLES)
    b = (a + rng.integers(1, m, size=BATTLES)) % m
    logit = STRENGTH[a] - STRENGTH[b]
    frame = {"model_a": NAMES[a], "model_b": NAMES[b]}
    if style:
        base = np.array([500.0, 900.0, 700.0, 1200.0, 600.0])
        levels = np.array([0.7, 1.0, 1.4])
        words_a = base[a] * levels[rng.integers(0, 3, BATTLES)]
        words_b = base[b] * levels[rng.integers(0, 3, BATTLES)]
        logit = logit + 1.5 * (words_a - words_b) / (words_a + words_b)
        frame.update(words_a=words_a, words_b=words_b, bold_a=rng.integers(0, 2, BATTLES), bold_b=rng.integers(0, 2, BATTLES))
    p = 1.0 / (1.0 + np.exp(-logit))
    frame["winner"] = np.where(rng.random(BATTLES) < p, "model_a", "model_b")
    return pd.DataFrame(frame)


def calibration(estimates, lows, highs) -> tuple[float, float]:
    """Coverage of TRUE, and mean width over 2 * Z95 * (sd of the estimates), pooled over models."""
    estimates, lows, highs = (np.asarray(x) for x in (estimates, lows, highs))
    coverage = float(np.mean((lows <= TRUE) & (TRUE <= highs)))
    spread = 2 * Z95 * estimates.std(axis=0, ddof=1)
    return coverage, float(np.mean((highs - lows).mean(axis=0) / spread))


def assert_calibrated(label: str, coverage: float, width: float) -> None:
    assert 0.92 <= coverage <= 0.98, f"{label}: coverage {coverage:.3f}"
    assert 0.85 <= width <= 1.15, f"{label}: width / spread {width:.3f}"


@pytest.mark.parametrize("style", [False, True], ids=["plain", "style-control"])
def test_bootstrap_and_sandwich_intervals_are_calibrated(style):
    rng = np.random.default_rng(20261202 + style)
    rows = {k: [] for k in ("rating", "ci_low", "ci_high", "sandwich_low", "sandwich_high")}
    for i in range(DATA_SETS):
        result = compute_ratings(draw(rng, style=style), bootstrap=BOOTSTRAP, seed=i, style_control=style,
                                 style_features=["length", "bold"] if style else None, compare_uncontrolled=False)
        table = result.table.set_index("model").loc[NAMES]
        for key, values in rows.items():
            values.append(table[key].to_numpy(dtype=float))
        if style and i == 0:
            assert result.style_coefs["length"] > 0 and set(result.style_coefs) == {"length", "bold"}
    estimates = rows["rating"]
    boot = calibration(estimates, rows["ci_low"], rows["ci_high"])
    sandwich = calibration(estimates, rows["sandwich_low"], rows["sandwich_high"])
    assert_calibrated("bootstrap", *boot)
    assert_calibrated("sandwich", *sandwich)
    # The same checks reject what the old test let through: sandwich intervals 3x too wide,
    # and a bootstrap at 99% (bounds z99/z95 = 1.31 times as far from the estimate).
    centre, half = np.asarray(estimates), (np.asarray(rows["sandwich_high"]) - np.asarray(rows["sandwich_low"])) / 2
    wide = calibration(estimates, centre - 3 * half, centre + 3 * half)
    stretch = 2.5758293035489 / Z95
    b_low, b_high = np.asarray(rows["ci_low"]), np.asarray(rows["ci_high"])
    at_99 = calibration(estimates, centre - stretch * (centre - b_low), centre + stretch * (b_high - centre))
    for label, (coverage, width) in (("3x sandwich", wide), ("99% bootstrap", at_99)):
        with pytest.raises(AssertionError):
            assert_calibrated(label, coverage, width)
