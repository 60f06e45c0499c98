"""Annotator agreement on hand-computed cases."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from evaluation.agreement import agreement_report, annotator_stats, cohen_kappa, krippendorff_alpha, pairwise_kappa
from core.errors import UserError


def test_cohen_kappa_hand_computed():
    # 10 items: agree on 7. Rater 1: A x5, B x5; rater 2: A x6, B x4.
    first = ["A"] * 5 + ["B"] * 5
    second = ["A", "A", "A", "A", "B", "A", "A", "B", "B", "B"]
    # p_o = 0.7 (4 A-A + 3 B-B); p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["A", "B"], ["A", "B"]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(["A", "A"], ["A", "A"]))  # chance agreement is total


def test_krippendorff_alpha_hand_computed():
    # Units: (A,A), (A,B), (B,B), (B,B,A).
    # Coincidences: AA 2, AB 1 + 1 (3-unit: A with two Bs, 1/2 each, both directions), BB 2 + 1.
    # o_AA=2, o_AB=o_BA=1+1=2, o_BB=2+1=3; n_A=4, n_B=5, n=9; alpha = 1 - 8*4/(2*4*5) = 0.2
    units = [["A", "A"], ["A", "B"], ["B", "B"], ["B", "B", "A"]]
    assert krippendorff_alpha(units) == pytest.approx(0.2)
    assert krippendorff_alpha([["A", "A"], ["B", "B"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([["A"], ["B"]]))  # nothing pairable


def votes():
    rows = [
        # battle, annotator, winner, reading seconds
        (1, "ann", "model_a", 30.0), (1, "bob", "model_a", 40.0), (1, "cy", "model_a", 50.0),
        (2, "ann", "model_a", 10.0), (2, "bob", "model_b", 20.0), (2, "cy", "model_b", 60.0),
        (3, "ann", "tie", 20.0), (3, "bob", "tie", 30.0),
        (4, "cy", "both_bad", None),
    ]
    return pd.DataFrame(rows, columns=["battle_id", "annotator", "winner", "reading_seconds"])


def test_pairwise_kappa_on_shared_battles():
    pairs = {(p["annotator_1"], p["annotator_2"]): p for p in pairwise_kappa(votes())}
    assert pairs[("ann", "bob")]["shared"] == 3 and pairs[("ann", "bob")]["agreement"] == pytest.approx(2 / 3)
    # ann: a,a,tie; bob: a,b,tie -> p_o=2/3, p_e=(2*1 + 1*1)/9 = 1/3, kappa=(1/3)/(2/3)=0.5
    assert pairs[("ann", "bob")]["kappa"] == pytest.approx(0.5)
    assert pairs[("bob", "cy")]["shared"] == 2 and pairs[("bob", "cy")]["kappa"] == pytest.approx(1.0)


def test_annotator_stats():
    stats = {s["annotator"]: s for s in annotator_stats(votes())}
    ann = stats["ann"]
    assert ann["votes"] == 3 and ann["median_reading_seconds"] == 20.0
    # battles 1 and 2 have two other votes: majority a (agrees), majority b (disagrees).
    assert ann["majority_battles"] == 2 and ann["agreement_with_majority"] == pytest.approx(0.5)
    assert ann["left_share"] == 1.0  # both decisive votes went to the left side
    assert stats["bob"]["left_share"] == pytest.approx(0.5)
    # cy read 50 s and 60 s; the vote without a reading time is left out of the median.
    assert stats["cy"]["median_reading_seconds"] == 55.0 and stats["cy"]["both_bad_share"] == pytest.approx(1 / 3)
    report = agreement_report(votes())
    assert report["battles_with_several_votes"] == 3 and report["alpha"] is not None


def test_missing_columns():
    with pytest.raises(UserError, match="annotator"):
        agreement_report(pd.DataFrame({"battle_id": [1], "winner": ["tie"]}))
