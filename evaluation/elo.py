"""Online Elo over battles in the order given: the classic arena rating, kept for comparison with BT.

Online Elo depends on the order of the votes and weights recent ones more; Bradley–Terry does
not. Their disagreement is itself a useful signal (a model that changed, or drifting annotators).
"""

from __future__ import annotations

import math

import numpy as np

from evaluation.battles import OUTCOME_A, OUTCOME_B


def online_elo(
    a: np.ndarray,
    b: np.ndarray,
    outcome: np.ndarray,
    n_models: int,
    *,
    k: float = 4.0,
    scale: float = 400.0,
    base: float = 10.0,
    initial: float = 1000.0,
) -> np.ndarray:
    """Elo ratings after playing the battles in order; a tie (and ``both_bad``) scores 0.5 each."""
    ratings = [initial] * n_models
    score_of = {OUTCOME_A: 1.0, OUTCOME_B: 0.0}
    log_base = math.log(base)
    for i, j, o in zip(a.tolist(), b.tolist(), outcome.tolist()):
        expected = 1.0 / (1.0 + math.exp((ratings[j] - ratings[i]) / scale * log_base))
        change = k * (score_of.get(o, 0.5) - expected)
        ratings[i] += change
        ratings[j] -= change
    return np.asarray(ratings)

