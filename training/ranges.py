"""Word ranges ``[L_lower, L_upper]``: the length reward's input, and the one place their rules live.

Two sources of a range, both checked here:

- a prompt's target with a tolerance, ``target * (1 ± tolerance)`` (:func:`word_range`);
- a range predicted by a model under the paper's rules (LongWriter-Zero, arXiv 2506.18841, the
  length reward's range predictor), :func:`paper_range_problem`: both bounds multiples of 100, the
  upper at most 12,000 words, the width at most 3,000, a request that names a word count kept within
  that count ±10%, and ``[0, 0]`` for a request that cannot be met.

A pure module: no model, no database, no network (``training.range_model`` asks a server).
"""

from __future__ import annotations

import math
from typing import Any

STEP = 100
UPPER_MAX = 12_000
WIDTH_MAX = 3_000
EXPLICIT_TOLERANCE = 0.10
UNMEETABLE = (0, 0)


def present(value: Any) -> bool:
    """A cell holds a number: not None and not NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def word_range(*, target: int | None, tolerance: float) -> tuple[int, int] | None:
    """The target range ``[target*(1-tolerance), target*(1+tolerance)]`` in words, or None without a target."""
    if target is None or (isinstance(target, float) and math.isnan(target)) or target <= 0:
        return None
    return max(1, round(target * (1 - tolerance))), max(1, round(target * (1 + tolerance)))


def range_problem(low: Any, high: Any, *, l_max: Any = None) -> str | None:
    """Why ``[low, high]`` (with ``l_max``) cannot define the length reward, or None when it can.

    ``[0, 0]`` is how the paper's range predictor marks a request that cannot be met.
    """
    if not (present(low) and present(high)):
        return "no range"
    if float(low) == 0 and float(high) == 0:
        return "[0, 0] (a request that cannot be met)"
    if float(low) <= 0 or float(high) <= 0:
        return f"[{low}, {high}] has a bound at or below zero"
    if float(low) > float(high):
        return f"[{low}, {high}] is inverted (min_words above max_words)"
    if present(l_max) and float(l_max) <= float(high):
        return f"L_max {l_max} is not above max_words {high}"
    return None


def explicit_bounds(count: int) -> tuple[int, int]:
    """The widest range the paper's rules allow for a request naming ``count`` words: ``count ± 10%``,
    rounded outward to multiples of 100 so that every count has one (1,550 words: 1,395..1,705 gives
    [1,300, 1,800]; 150 words: [100, 200])."""
    low = math.floor(count * (1 - EXPLICIT_TOLERANCE) / STEP) * STEP
    high = math.ceil(count * (1 + EXPLICIT_TOLERANCE) / STEP) * STEP
    return low, high


def paper_range_problem(low: int, high: int, *, explicit: int | None = None) -> str | None:
    """Why a predicted ``[low, high]`` breaks the paper's rules, or None when it keeps them.

    ``explicit`` is the word count the request names (a prompt's stored target), if any.
    ``[0, 0]`` (a request that cannot be met) keeps the rules.
    """
    if (low, high) == UNMEETABLE:
        return None
    if low < 0 or high < 0:
        return f"[{low}, {high}] has a negative bound"
    if low % STEP or high % STEP:
        return f"[{low}, {high}] is not in multiples of {STEP}"
    if low >= high:
        return f"[{low}, {high}] is empty or inverted (the lower bound must be below the upper)"
    if high > UPPER_MAX:
        return f"[{low}, {high}] goes past {UPPER_MAX:,} words"
    if high - low > WIDTH_MAX:
        return f"[{low}, {high}] is {high - low:,} words wide, more than {WIDTH_MAX:,}"
    if explicit is not None:
        allowed_low, allowed_high = explicit_bounds(explicit)
        if low < allowed_low or high > allowed_high:
            return (f"[{low}, {high}] strays from the requested {explicit:,} words by more than "
                    f"{EXPLICIT_TOLERANCE:.0%} (allowed within [{allowed_low}, {allowed_high}])")
    return None
