"""Annotator reliability: pairwise Cohen's kappa, Krippendorff's alpha, and per-annotator habits.

Input is a votes table with columns ``battle_id, annotator, winner`` (and optionally
``reading_seconds``), one row per vote, as ``storage.votes.votes_table`` returns it. The
categories are the four vote labels (model_a, model_b, tie, both_bad), treated as nominal.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

import numpy as np

from core.errors import UserError

LABELS = ("model_a", "model_b", "tie", "both_bad")


def _check(votes) -> None:
    missing = [c for c in ("battle_id", "annotator", "winner") if c not in votes.columns]
    if missing:
        raise UserError(f"the votes table lacks the column(s) {', '.join(missing)}")


def cohen_kappa(first: list[str], second: list[str]) -> float:
    """Cohen's kappa of two raters over the same items, in order. NaN if chance agreement is total.

    kappa = (p_o - p_e) / (1 - p_e), with p_e from each rater's own label frequencies.
    """
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return float("nan")
    observed = sum(x == y for x, y in zip(first, second)) / n
    freq_1, freq_2 = Counter(first), Counter(second)
    expected = sum(freq_1[label] * freq_2[label] for label in freq_1) / (n * n)
    if expected >= 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: list[list[str]]) -> float:
    """Krippendorff's alpha for nominal labels; ``units`` holds the labels given to each item.

    Items with fewer than two labels are not pairable and are ignored. Built from the coincidence
    matrix: alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k. NaN when there is no
    pairable item or only one label is ever used.
    """
    coincidence: Counter = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        for i, j in ((i, j) for i in range(m) for j in range(m) if i != j):
            coincidence[(labels[i], labels[j])] += 1.0 / (m - 1)
    if not coincidence:
        return float("nan")
    totals: Counter = Counter()
    for (c, _), value in coincidence.items():
        totals[c] += value
    n = sum(totals.values())
    disagree = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if expected == 0:
        return float("nan")
    return 1.0 - (n - 1) * disagree / expected


def pairwise_kappa(votes) -> list[dict[str, Any]]:
    """Cohen's kappa for each pair of annotators on the battles both voted on (pairs sharing none are left out)."""
    _check(votes)
    by_annotator: dict[str, dict[int, str]] = {}
    for battle, annotator, winner in zip(votes["battle_id"], votes["annotator"], votes["winner"]):
        by_annotator.setdefault(str(annotator), {})[int(battle)] = str(winner)
    out = []
    for first, second in combinations(sorted(by_annotator), 2):
        shared = sorted(set(by_annotator[first]) & set(by_annotator[second]))
        if not shared:
            continue
        kappa = cohen_kappa([by_annotator[first][b] for b in shared], [by_annotator[second][b] for b in shared])
        agree = sum(by_annotator[first][b] == by_annotator[second][b] for b in shared) / len(shared)
        out.append({"annotator_1": first, "annotator_2": second, "shared": len(shared),
                    "agreement": agree, "kappa": None if np.isnan(kappa) else kappa})
    return out


def annotator_stats(votes) -> list[dict[str, Any]]:
    """Per annotator: votes, median reading seconds, agreement with the majority, left-side share.

    Agreement with the majority counts the battles where at least two *other* annotators voted and
    their most common label is unique; it is the share of those where this annotator chose it
    (None when there are none). Left-side share is model_a / (model_a + model_b) over decisive
    votes: 0.5 means no position bias.
    """
    _check(votes)
    per_battle: dict[int, list[tuple[str, str]]] = {}
    for battle, annotator, winner in zip(votes["battle_id"], votes["annotator"], votes["winner"]):
        per_battle.setdefault(int(battle), []).append((str(annotator), str(winner)))
    out = []
    for annotator, group in votes.groupby(votes["annotator"].astype(str), sort=True):
        winners = group["winner"].astype(str)
        left, right = int((winners == "model_a").sum()), int((winners == "model_b").sum())
        reading = group["reading_seconds"].dropna() if "reading_seconds" in group.columns else []
        agree = compared = 0
        for battle, winner in zip(group["battle_id"], winners):
            others = [w for who, w in per_battle[int(battle)] if who != annotator]
            if len(others) < 2:
                continue
            ranked = Counter(others).most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue
            compared += 1
            agree += winner == ranked[0][0]
        out.append({
            "annotator": annotator,
            "votes": int(len(group)),
            "median_reading_seconds": float(np.median(reading)) if len(reading) else None,
            "majority_battles": compared,
            "agreement_with_majority": agree / compared if compared else None,
            "left_share": left / (left + right) if left + right else None,
            "tie_share": float((winners == "tie").mean()) if len(group) else None,
            "both_bad_share": float((winners == "both_bad").mean()) if len(group) else None,
        })
    return out


def agreement_report(votes) -> dict[str, Any]:
    """Everything at once: ``{"annotators", "pairs", "alpha", "battles_with_several_votes"}``."""
    _check(votes)
    units = [list(map(str, g)) for _, g in votes.groupby("battle_id")["winner"]]
    alpha = krippendorff_alpha(units)
    return {
        "annotators": annotator_stats(votes),
        "pairs": pairwise_kappa(votes),
        "alpha": None if np.isnan(alpha) else alpha,
        "battles_with_several_votes": sum(1 for u in units if len(u) >= 2),
    }
