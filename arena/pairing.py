"""Pair selection for the arena: pure functions over plain values, with an explicit ``random.Random``.

Three decisions live here and nowhere else:

- which generations of one prompt pair up into new battles (:func:`plan_battles`), with the
  left/right order drawn from the given generator (the caller stores it on the battle row);
- which open battle an annotator reads next (:func:`choose_battle`): never one they were
  already given, never one containing their own writing, and, among the rest, preferably one
  with few votes whose models' ratings are still uncertain;
- how uncertain a model's rating is when no rating fit is at hand (:func:`uncertainty_from_counts`).

Nothing here touches the database, Gradio or the clock, so every rule has a hand-made test.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class PoolEntry:
    """One generation eligible for battles: complete, not truncated, with text."""

    generation_id: int
    prompt_id: int
    model: str


@dataclass(frozen=True)
class PlannedBattle:
    """A battle to create: ``left`` is shown as A, ``right`` as B."""

    prompt_id: int
    left_generation_id: int
    right_generation_id: int


@dataclass(frozen=True)
class Candidate:
    """An existing battle as pair selection sees it (model names never leave the server)."""

    battle_id: int
    model_left: str
    model_right: str
    votes: int = 0
    authors: frozenset[int] = field(default_factory=frozenset)


def plan_battles(
    entries: Iterable[PoolEntry],
    *,
    existing_pairs: Iterable[tuple[int, int]] = (),
    rng: random.Random,
    max_per_prompt: int | None = None,
) -> list[PlannedBattle]:
    """New battles between generations of *different* models on the same prompt.

    A pair of generations already in ``existing_pairs`` (either order) is not planned again,
    so forming battles is idempotent. The sides of each new battle are shuffled with ``rng``.
    ``max_per_prompt`` caps the new battles per prompt (the pairs kept are drawn with ``rng``).
    Output order is deterministic for a given seed: prompts ascending, then as drawn.
    """
    seen = {frozenset(p) for p in existing_pairs}
    by_prompt: dict[int, list[PoolEntry]] = {}
    for entry in sorted(entries, key=lambda e: (e.prompt_id, e.generation_id)):
        by_prompt.setdefault(entry.prompt_id, []).append(entry)
    planned: list[PlannedBattle] = []
    for prompt_id, group in sorted(by_prompt.items()):
        pairs = [
            (a, b) for a, b in combinations(group, 2)
            if a.model != b.model and frozenset((a.generation_id, b.generation_id)) not in seen
        ]
        rng.shuffle(pairs)
        if max_per_prompt is not None:
            pairs = pairs[: max(0, max_per_prompt)]
        for a, b in pairs:
            left, right = (a, b) if rng.random() < 0.5 else (b, a)
            planned.append(PlannedBattle(prompt_id, left.generation_id, right.generation_id))
            seen.add(frozenset((a.generation_id, b.generation_id)))
    return planned


def uncertainty_from_counts(votes_per_model: Mapping[str, int]) -> dict[str, float]:
    """A stand-in for a rating interval width: 1/sqrt(n + 1) for a model with n votes.

    A Bradley–Terry interval shrinks roughly as 1/sqrt(n); this keeps that shape without a fit.
    """
    return {model: 1.0 / math.sqrt(max(0, n) + 1) for model, n in votes_per_model.items()}


def votes_per_model(candidates: Iterable[Candidate]) -> dict[str, int]:
    """Votes each model has taken part in, summed over the battles given (both sides count)."""
    counts: dict[str, int] = {}
    for c in candidates:
        for model in (c.model_left, c.model_right):
            counts[model] = counts.get(model, 0) + max(0, c.votes)
    return counts


def battle_weight(candidate: Candidate, uncertainty: Mapping[str, float]) -> float:
    """How strongly a battle is preferred: fewer votes and more uncertain models weigh more.

    ``uncertainty`` maps a model to a non-negative width (a rating CI width, or
    :func:`uncertainty_from_counts`); widths are scaled by the largest one, and a model missing
    from the mapping counts as maximally uncertain (it has never been rated).
    """
    return _weight(candidate, uncertainty, _top_width(uncertainty))


def _top_width(uncertainty: Mapping[str, float]) -> float:
    return max((u for u in uncertainty.values() if u > 0), default=1.0)


def _weight(candidate: Candidate, uncertainty: Mapping[str, float], top: float) -> float:
    def scaled(model: str) -> float:
        return min(1.0, max(0.0, uncertainty.get(model, top)) / top)
    spread = (scaled(candidate.model_left) + scaled(candidate.model_right)) / 2
    return (1.0 + spread) / (1.0 + max(0, candidate.votes))


def battle_weights(candidates: Sequence[Candidate], uncertainty: Mapping[str, float] | None) -> list[float]:
    """:func:`battle_weight` of every candidate, in order (the largest width found once)."""
    widths = dict(uncertainty) if uncertainty is not None else {}
    top = _top_width(widths)
    return [_weight(c, widths, top) for c in candidates]


def choose_battle(
    candidates: Sequence[Candidate],
    *,
    annotator_id: int,
    already_given: Iterable[int] = (),
    uncertainty: Mapping[str, float] | None = None,
    rng: random.Random,
    weights: Sequence[float] | None = None,
) -> Candidate | None:
    """The next battle for ``annotator_id``, or None when nothing is left for them.

    Excluded: battles in ``already_given`` (assigned before, voted or skipped) and battles with
    a generation the annotator wrote (``authors``). The rest are drawn with probability
    proportional to :func:`battle_weight`, using ``rng`` only. ``weights``: those weights
    already computed for ``candidates`` (see :func:`battle_weights`), to be reused across calls.
    """
    given = set(already_given)
    if weights is None:
        weights = battle_weights(candidates, uncertainty)
    kept = [(c, w) for c, w in zip(candidates, weights) if c.battle_id not in given and annotator_id not in c.authors]
    if not kept:
        return None
    return rng.choices([c for c, _ in kept], weights=[w for _, w in kept], k=1)[0]
