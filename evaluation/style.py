"""Style features of an answer and the style-control covariates of a battles table (LMArena's style control).

Voters favour longer answers and markdown. Style control fits Bradley–Terry with one covariate
per style feature, so that a model's rating is what it would get at equal style. The features
of one answer are:

* ``length``: words, counted as the Write tab counts them (``generation.counting.count_words``);
* ``headers``: markdown header lines (``# ...`` to ``###### ...``);
* ``lists``: list item lines (``-``, ``*``, ``+`` or ``1.`` / ``1)``);
* ``bold``: bold spans (``**...**`` or ``__...__``);
* ``repetition``: this project's repetition score without embeddings: the longest token span
  (4 tokens or more) that occurs twice, as a share of the answer's tokens (the span part of
  ``training.rewards.FormatReward.repetition``).

For each battle and feature the covariate is the normalised difference ``(a - b) / (a + b)``
(0 when both are 0), then divided by its standard deviation over the battles, so that every
coefficient reads as "rating points per standard deviation of that difference". A feature that
never differs cannot be estimated and is left out with a warning.

From a file, features come from columns ``words_a, words_b`` (length), ``headers_a, headers_b``,
``lists_a, lists_b``, ``bold_a, bold_b``, ``repetition_a, repetition_b``, or are computed from
``text_a, text_b``.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from core.errors import UserError
from evaluation.battles import non_negative_column

STYLE_FEATURES = ("length", "headers", "lists", "bold", "repetition")
_HEADER = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__", re.DOTALL)


def column_names(feature: str) -> tuple[str, str]:
    """The file columns holding ``feature`` for side a and side b (length lives in ``words_a/b``)."""
    base = "words" if feature == "length" else feature
    return f"{base}_a", f"{base}_b"


def answer_features(text: str) -> dict[str, float]:
    """The style features of one answer (see the module docstring)."""
    from evaluation.metrics import longest_repeated_ngram, tokens
    from generation.counting import count_words

    text = text or ""
    count = len(tokens(text))
    return {
        "length": float(count_words(text)),
        "headers": float(len(_HEADER.findall(text))),
        "lists": float(len(_LIST_ITEM.findall(text))),
        "bold": float(len(_BOLD.findall(text))),
        "repetition": longest_repeated_ngram(text, 4) / count if count else 0.0,
    }


def check_features(features: Sequence[str] | None) -> list[str]:
    """The chosen features in the canonical order; UserError naming the known ones for an unknown name."""
    chosen = list(STYLE_FEATURES if features is None else features)
    unknown = [f for f in chosen if f not in STYLE_FEATURES]
    if unknown or not chosen:
        raise UserError(f"unknown style feature(s) {', '.join(unknown) or '(none given)'}: "
                        f"choose from {', '.join(STYLE_FEATURES)}")
    return [f for f in STYLE_FEATURES if f in chosen]


def feature_columns(frame, features: Sequence[str]):
    """``frame`` with the ``{feature}_a/_b`` columns of ``features`` present (computed from
    ``text_a/text_b`` where they are missing); UserError listing the expected columns otherwise."""
    import pandas as pd

    needed = [c for f in features for c in column_names(f)]
    missing = [c for c in needed if c not in frame.columns]
    if not missing:
        out = frame.copy()
    elif {"text_a", "text_b"} <= set(frame.columns):
        out = frame.copy()
        for side in ("a", "b"):
            rows = [answer_features("" if pd.isna(t) else str(t)) for t in frame[f"text_{side}"]]
            for feature in features:
                column = column_names(feature)[0 if side == "a" else 1]
                if column in missing:
                    out[column] = [r[feature] for r in rows]
    else:
        lacking = f"{', '.join(missing)}" + ("" if missing == needed else f" (expected {', '.join(needed)})")
        raise UserError(
            f"style control needs the column(s) {lacking}, or text_a and text_b to compute them from; "
            f"the table has {', '.join(map(str, frame.columns))}"
        )
    for column in needed:
        out[column] = non_negative_column(out, column)
    return out


def normalised_difference(a, b) -> np.ndarray:
    """``(a - b) / (a + b)`` in [-1, 1], 0 where both are 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    total = a + b
    return np.where(total > 0, (a - b) / np.where(total > 0, total, 1.0), 0.0)


def style_covariates(frame, features: Sequence[str]) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Covariates (battles x kept features) from a table with the feature columns.

    Returns ``(z, kept, scale, dropped)``: the standardised differences, the features kept, the
    standard deviation each was divided by, and the features left out for never differing.
    """
    columns, kept, scales, dropped = [], [], [], []
    for feature in features:
        col_a, col_b = column_names(feature)
        raw = np.round(normalised_difference(frame[col_a], frame[col_b]), 2)
        sd = float(np.std(raw)) if len(raw) else 0.0
        if sd <= 0.0:
            dropped.append(feature)
            continue
        columns.append(raw / sd)
        kept.append(feature)
        scales.append(sd)
    z = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0))
    return z, kept, np.asarray(scales), dropped
