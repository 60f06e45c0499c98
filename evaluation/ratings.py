"""Ratings from a battles table: Bradley–Terry (or online Elo) with 95% intervals, ranks and warnings.

Pure functions over a pandas DataFrame with columns ``model_a, model_b, winner`` (see
:mod:`evaluation.battles`). The main entry is :func:`compute_ratings`; the CLI, the leaderboard
tab and the LLM-judge runs all call it.

Conventions:

* Ratings are Elo points: ``scale / ln(10) * theta`` (scale 400: a 400-point gap is 10:1 odds),
  shifted so that the mean of each connected part's reliable models (all of its models if none
  is reliable) is ``anchor_rating`` (1000), or, with ``anchor=MODEL``, so that that model sits
  at ``anchor_rating``.
* Bootstrap intervals resample battles with replacement. Because the fit depends on the battles
  only through the counts of distinct rows, resampling N rows is the same as drawing the count
  vector from Multinomial(N, counts / N), which is what is done (exactly equivalent, far cheaper).
* Rank = 1 + the number of models (in the same connected part) whose interval's lower bound is
  above this model's upper bound.
* A model with fewer than ``min_battles`` battles gets no rating, interval or rank (NaN; ``needs``
  says how many more battles it needs): with a handful of votes the maximum-likelihood rating is
  noise with a deceptively narrow interval. Its battles still inform the other models' ratings.
* A rated model's interval is *unreliable* when its record is perfect (no loss or no win, ties
  aside): the maximum-likelihood strength is then infinite.
* Style control (``style_control=True``) adds one covariate per style feature
  (:mod:`evaluation.style`); the table then also holds each model's rating and rank without
  control and the rank change (``rank_uncontrolled - rank``: positive = higher under control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation import bt
from evaluation.battles import (
    OUTCOME_A, OUTCOME_B, OUTCOME_TIE, CountTable, collapse, components, record, subset, validate_battles,
)
from evaluation.elo import online_elo
from core.errors import UserError

METHODS = ("bt", "elo")
TIE_MODELS = ("half", "davidson")
INTERVALS = ("bootstrap", "sandwich")
Z95 = 1.959963984540054
COLUMNS = [
    "model", "rating", "ci_low", "ci_high", "rank", "n", "wins", "losses", "ties",
    "component", "reliable", "needs", "sandwich_low", "sandwich_high", "theta",
]
STYLE_COLUMNS = ["rating_uncontrolled", "rank_uncontrolled", "rank_change"]


@dataclass
class RatingResult:
    """A leaderboard: one row per model in ``table`` (columns ``COLUMNS``), best first, plus context.

    ``theta`` is the natural-log strength, comparable only within one ``component``. Models with
    fewer than ``min_battles`` battles have NaN ratings, no rank and ``needs > 0``. ``length_coef``
    is gamma in Elo points per unit of the length covariate; ``style_coefs`` maps each style feature
    to its coefficient in Elo points per standard deviation of its normalised difference;
    ``tie_nu`` is Davidson's tie parameter.
    """

    table: Any
    method: str
    ties: str
    interval: str
    bootstrap: int
    seed: int
    length_control: bool
    anchor: str | None
    anchor_rating: float
    scale: float
    warnings: list[str] = field(default_factory=list)
    length_coef: float | None = None
    tie_nu: float | None = None
    counts: CountTable | None = None
    min_battles: int = 20
    style_control: bool = False
    style_coefs: dict[str, float] | None = None

    def records(self) -> list[dict[str, Any]]:
        """The table as JSON-ready dicts (NaN becomes None)."""
        out = []
        for row in self.table.to_dict(orient="records"):
            out.append({k: _plain(v) for k, v in row.items() if k != "theta"})
        return out


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 4)
    return value


def compute_ratings(
    battles,
    *,
    method: str = "bt",
    ties: str = "half",
    bootstrap: int = 100,
    seed: int = 0,
    interval: str | None = None,
    length_control: bool = False,
    anchor: str | None = None,
    anchor_rating: float = 1000.0,
    scale: float = 400.0,
    models: list[str] | None = None,
    min_battles: int = 20,
    both_bad: str = "tie",
    elo_k: float = 4.0,
    style_control: bool = False,
    style_features: list[str] | None = None,
    compare_uncontrolled: bool = True,
) -> RatingResult:
    """Rate the models of a battles table.

    ``method`` is ``bt`` (Bradley–Terry MLE) or ``elo`` (online Elo, order-dependent); ``ties`` is
    ``half`` (a tie is half a win) or ``davidson``; ``interval`` is ``bootstrap`` (default when
    ``bootstrap > 0``) or ``sandwich`` (BT only). ``models`` lists every known model, so those
    without battles are listed unrated. ``style_control`` adds the covariates of
    :mod:`evaluation.style` (``style_features``, default all) and, unless ``compare_uncontrolled``
    is False, the uncontrolled ratings and ranks beside them. Raises UserError on bad input.
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    if ties not in TIE_MODELS:
        raise UserError(f"unknown tie model {ties!r}: choose {' or '.join(TIE_MODELS)}")
    if bootstrap < 0:
        raise UserError(f"--bootstrap must be 0 or more, got {bootstrap}")
    if interval is not None and interval not in INTERVALS:
        raise UserError(f"unknown interval {interval!r}: choose {' or '.join(INTERVALS)}")
    if min_battles < 0:
        raise UserError(f"--min-battles must be 0 or more, got {min_battles}")
    if style_control and length_control:
        raise UserError("style control already includes length: choose --style-control or --length-control")
    if method == "elo":
        if ties == "davidson" or length_control or style_control or interval == "sandwich":
            raise UserError("online Elo supports neither Davidson ties, length or style control nor sandwich "
                            "intervals: use --method bt")
        interval = "bootstrap"  # with --bootstrap 0, Elo has no intervals
    interval = interval or ("bootstrap" if bootstrap > 0 else "sandwich")
    if method == "bt" and interval == "bootstrap" and bootstrap == 0:
        raise UserError("bootstrap intervals need --bootstrap N with N > 0 (or choose sandwich intervals)")
    if interval == "sandwich":
        bootstrap = 0  # nothing to resample for
    frame = validate_battles(battles, need_lengths=length_control)
    covariates, kept, dropped = None, [], []
    if style_control:
        from evaluation.style import check_features, feature_columns, style_covariates

        frame = feature_columns(frame, check_features(style_features))
        covariates, kept, _, dropped = style_covariates(frame, check_features(style_features))
    table = collapse(frame, length_control=length_control, covariates=covariates, both_bad=both_bad)
    if anchor is not None and anchor not in table.models:
        raise UserError(f"anchor model {anchor!r} has no battles in this table")
    result = RatingResult(
        table=None, method=method, ties=ties, interval=interval, bootstrap=bootstrap, seed=seed,
        length_control=length_control, anchor=anchor, anchor_rating=anchor_rating, scale=scale, counts=table,
        min_battles=min_battles, style_control=style_control,
    )
    if dropped:
        result.warnings.append(f"style feature(s) that never differ, left out of the control: {', '.join(dropped)}")
    rng = np.random.default_rng(seed)
    parts = components(table)
    if len(parts) > 1:
        sizes = ", ".join(str(len(p)) for p in parts)
        result.warnings.append(
            f"the comparison graph falls into {len(parts)} separate parts (sizes {sizes}): ratings and ranks "
            "are comparable only within a part (see the component column)"
        )
    rows: list[dict[str, Any]] = []
    stats = record(table)
    for number, members in enumerate(parts, start=1):
        part = subset(table, members)
        core = _core(part, min_battles)
        if method == "bt":
            ratings, theta, low, high, s_low, s_high, (gammas, nu) = _rate_bt(
                part, ties=ties, bootstrap=bootstrap, rng=rng,
                anchor=anchor, anchor_rating=anchor_rating, scale=scale, core=core,
            )
            if number == 1:
                result.tie_nu = nu
                result.length_coef = float(gammas[0]) if length_control else None
                result.style_coefs = dict(zip(kept, map(float, gammas))) if style_control else None
        else:
            ratings, theta, low, high = _rate_elo(
                frame, part, bootstrap=bootstrap, rng=rng, anchor=anchor, anchor_rating=anchor_rating,
                scale=scale, k=elo_k, core=core,
            )
            s_low = s_high = np.full(len(members), np.nan)
        if interval == "sandwich":
            low, high = s_low, s_high
        for local, index in enumerate(members):
            n, wins, losses, draws = (int(stats[key][index]) for key in ("n", "wins", "losses", "ties"))
            perfect = (wins + draws == 0) or (losses + draws == 0)
            row = {
                "model": table.models[index], "rating": ratings[local], "ci_low": low[local], "ci_high": high[local],
                "n": n, "wins": wins, "losses": losses, "ties": draws, "component": number,
                "reliable": bool(not perfect and np.isfinite(low[local]) and np.isfinite(high[local])),
                "needs": 0, "sandwich_low": s_low[local], "sandwich_high": s_high[local], "theta": theta[local],
            }
            rows.append(row if n >= min_battles else _unrated(row, min_battles))
    for name in sorted(set(models or []) - set(table.models)):
        rows.append(_unrated({"model": name, "n": 0, "wins": 0, "losses": 0, "ties": 0, "component": None}, min_battles))
    result.table = _finish_table(rows)
    unrated = [r["model"] for r in rows if r["n"] == 0]
    if unrated:
        result.warnings.append(f"no battles, not rated: {', '.join(unrated)}")
    few = [f"{r['model']} needs {r['needs']} more" for r in rows if 0 < r["n"] and r["needs"] > 0]
    if few:
        result.warnings.append(f"fewer than {min_battles} battles, not rated: {', '.join(few)}")
    shaky = [r["model"] for r in rows if r["needs"] == 0 and r["n"] > 0 and not r["reliable"]]
    if shaky:
        result.warnings.append(f"unreliable intervals (a perfect record): {', '.join(shaky)}")
    if style_control and compare_uncontrolled:
        _add_uncontrolled(result, battles, models=models, method=method, ties=ties, bootstrap=bootstrap, seed=seed,
                          interval=interval, anchor=anchor, anchor_rating=anchor_rating, scale=scale,
                          min_battles=min_battles, both_bad=both_bad)
    return result


def _unrated(row: dict[str, Any], min_battles: int) -> dict[str, Any]:
    """A row with no rating: too few battles (``needs`` says how many more; at least 1)."""
    blank = dict.fromkeys(("rating", "ci_low", "ci_high", "sandwich_low", "sandwich_high", "theta"), np.nan)
    return {**row, **blank, "reliable": False, "needs": max(1, min_battles - row["n"])}


def _add_uncontrolled(result: RatingResult, battles, *, models, **options) -> None:
    """Put each model's rating and rank without style control beside the controlled ones."""
    plain = compute_ratings(battles, models=models, **options).table.set_index("model")
    table = result.table
    table["rating_uncontrolled"] = table["model"].map(plain["rating"]).astype(float)
    table["rank_uncontrolled"] = table["model"].map(plain["rank"]).astype("Int64")
    table["rank_change"] = (table["rank_uncontrolled"] - table["rank"]).astype("Int64")


def _finish_table(rows: list[dict[str, Any]]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    ranks: list[int | None] = [None] * len(rows)
    for part in {r["component"] for r in rows if r["needs"] == 0}:
        members = [i for i, r in enumerate(rows) if r["component"] == part and r["needs"] == 0]
        low = np.array([rows[i]["ci_low"] for i in members], dtype=float)
        high = np.array([rows[i]["ci_high"] for i in members], dtype=float)
        point = np.array([rows[i]["rating"] for i in members], dtype=float)
        if not np.all(np.isfinite(low) & np.isfinite(high)):
            low = high = point  # no intervals (Elo without bootstrap): rank by the point estimates
        for i, rank in zip(members, rank_by_intervals(low, high)):
            ranks[i] = rank
    frame.insert(4, "rank", pd.array(ranks, dtype="Int64"))
    frame["component"] = frame["component"].astype("Int64")
    frame["_rated"] = frame["needs"] == 0
    frame = frame.sort_values(["_rated", "component", "rating", "n"], ascending=[False, True, False, False],
                              na_position="last", kind="stable")
    return frame.drop(columns="_rated").reset_index(drop=True)


def rank_by_intervals(low, high) -> list[int]:
    """Rank = 1 + the number of models whose lower bound is above this model's upper bound."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return [1 + int(np.sum(low > h)) for h in high]


def _to_points(theta: np.ndarray, models: list[str], *, anchor, anchor_rating, scale, core) -> np.ndarray:
    """Natural-log strengths (one row per sample, or a vector) to anchored Elo points.

    Without a named anchor, the mean of the ``core`` models (a boolean mask) is put at
    ``anchor_rating``; keeping models with unreliable, possibly huge, strengths out of that mean
    stops them from dragging every other rating (and interval) with them.
    """
    points = np.asarray(theta, dtype=float) * (scale / math.log(10.0))
    if anchor is not None and anchor in models:
        offset = points[..., models.index(anchor)]
    else:
        offset = points[..., core].mean(axis=-1)
    return points - np.expand_dims(offset, -1) + anchor_rating


def _core(part: CountTable, min_battles: int) -> np.ndarray:
    """Models with enough battles and no perfect record (all models if there are none)."""
    stats = record(part)
    core = (stats["n"] >= min_battles) & (stats["wins"] + stats["ties"] > 0) & (stats["losses"] + stats["ties"] > 0)
    return core if core.any() else np.ones(len(part.models), dtype=bool)


def _rate_bt(part: CountTable, *, ties, bootstrap, rng, anchor, anchor_rating, scale, core):
    davidson = ties == "davidson"
    result = bt.fit(part, davidson=davidson)
    m = len(part.models)
    ratings = _to_points(result.theta, part.models, anchor=anchor, anchor_rating=anchor_rating, scale=scale, core=core)
    # Sandwich: the anchoring is a linear map of theta, applied to the theta block of the covariance.
    cov = bt.sandwich_covariance(part, result)[:m, :m]
    weights = np.eye(m)[part.models.index(anchor)] if anchor in part.models else core / core.sum()
    transform = np.eye(m) - np.outer(np.ones(m), weights)
    sd = np.sqrt(np.clip(np.diag(transform @ cov @ transform.T), 0.0, None)) * (scale / math.log(10.0))
    s_low, s_high = ratings - Z95 * sd, ratings + Z95 * sd
    low = high = np.full(m, np.nan)
    if bootstrap > 0:
        samples = bootstrap_thetas(part, result, bootstrap=bootstrap, rng=rng, davidson=davidson)
        points = _to_points(samples, part.models, anchor=anchor, anchor_rating=anchor_rating, scale=scale, core=core)
        low, high = np.percentile(points, 2.5, axis=0), np.percentile(points, 97.5, axis=0)
    return ratings, result.theta, low, high, s_low, s_high, (result.gammas * scale / math.log(10.0), result.nu)


def bootstrap_thetas(part: CountTable, start: bt.Fit, *, bootstrap: int, rng, davidson=False) -> np.ndarray:
    """``bootstrap`` refits on battle resamples drawn as Multinomial(N, counts/N); one theta row each.

    All refits run at once (:func:`evaluation.bt.fit_many`), each started from ``start``.
    """
    total = part.total
    probabilities = (part.counts / total).ravel()
    counts = rng.multinomial(total, probabilities, size=bootstrap).reshape((bootstrap,) + part.counts.shape)
    return bt.fit_many(part, counts, davidson=davidson, start=start.params)[:, : len(part.models)]


def _rate_elo(frame, part: CountTable, *, bootstrap, rng, anchor, anchor_rating, scale, k, core):
    index = {name: i for i, name in enumerate(part.models)}
    rows = frame[frame["model_a"].isin(index) & frame["model_b"].isin(index)]
    a = rows["model_a"].map(index).to_numpy()
    b = rows["model_b"].map(index).to_numpy()
    outcome = np.where(rows["winner"] == "model_a", OUTCOME_A, np.where(rows["winner"] == "model_b", OUTCOME_B, OUTCOME_TIE))
    m = len(part.models)

    def rate(ia, ib, io):
        raw = online_elo(ia, ib, io, m, k=k, scale=scale, initial=0.0)
        return _to_points(raw * math.log(10.0) / scale, part.models, anchor=anchor, anchor_rating=anchor_rating,
                          scale=scale, core=core)

    ratings = rate(a, b, outcome)
    low = high = np.full(m, np.nan)
    if bootstrap > 0:
        samples = np.empty((bootstrap, m))
        for i in range(bootstrap):
            pick = rng.integers(0, len(a), size=len(a))
            samples[i] = rate(a[pick], b[pick], outcome[pick])
        low, high = np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)
    return ratings, ratings * math.log(10.0) / scale, low, high


def ratings_by_category(battles, **options) -> dict[str, RatingResult]:
    """:func:`compute_ratings` for each category (the ``category`` column), sorted by category name."""
    if "category" not in battles.columns:
        raise UserError("the battles table has no category column")
    out = {}
    for name, group in battles.groupby(battles["category"].fillna("(none)").astype(str), sort=True):
        out[str(name)] = compute_ratings(group, **options)
    return out


def win_rate_matrix(result: RatingResult):
    """Observed share of battles row-model won against column-model (a tie counts half); NaN where they never met."""
    import pandas as pd

    table = result.counts
    m = len(table.models)
    wins = np.zeros((m, m))
    games = np.zeros((m, m))
    won_a = table.counts[:, OUTCOME_A] + 0.5 * table.counts[:, OUTCOME_TIE]
    won_b = table.counts[:, OUTCOME_B] + 0.5 * table.counts[:, OUTCOME_TIE]
    np.add.at(wins, (table.a, table.b), won_a)
    np.add.at(wins, (table.b, table.a), won_b)
    np.add.at(games, (table.a, table.b), won_a + won_b)
    np.add.at(games, (table.b, table.a), won_a + won_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, wins / np.where(games > 0, games, 1.0), np.nan)
    order = [name for name in result.table["model"] if name in table.models]
    frame = pd.DataFrame(rate, index=table.models, columns=table.models)
    return frame.loc[order, order]


def predicted_matrix(result: RatingResult):
    """Predicted P(row beats column), a tie counting half, at equal lengths; NaN across separate parts."""
    import pandas as pd

    rated = result.table[result.table["needs"] == 0]
    names = list(rated["model"])
    theta = rated["theta"].to_numpy(dtype=float)
    part = rated["component"].to_numpy()
    if result.method == "elo":
        prob = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    else:
        prob = bt.win_probability(theta[:, None] - theta[None, :], result.tie_nu if result.ties == "davidson" else None)
    prob = np.where(part[:, None] == part[None, :], prob, np.nan)
    np.fill_diagonal(prob, np.nan)
    return pd.DataFrame(prob, index=names, columns=names)
