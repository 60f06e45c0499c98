"""The battles table that ratings are computed from: checking it, and collapsing it into counts.

A battles table has one row per vote with columns ``model_a``, ``model_b`` and ``winner``, where
``winner`` is one of ``model_a``, ``model_b``, ``tie`` or ``both_bad``. Length control also needs
``words_a`` and ``words_b``; per-category ratings need ``category``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError

WINNERS = ("model_a", "model_b", "tie", "both_bad")
OUTCOME_A, OUTCOME_B, OUTCOME_TIE = 0, 1, 2


def read_battles(path: str | Path):
    """Read a battles file: CSV, JSON lines (``.jsonl``/``.json`` with one object a line) or parquet."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".jsonl", ".json", ".ndjson"):
            frame = pd.read_json(path, lines=True)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise UserError(f"{path}: unknown file type {suffix!r}: use .csv, .jsonl or .parquet")
    except UserError:
        raise
    except Exception as exc:  # the parsers raise many kinds; the message is what the user needs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read battles ({first})") from None
    return frame


def validate_battles(frame, *, need_lengths: bool = False):
    """Check the columns and labels; return a copy with string model names and winners.

    Errors name the first bad row, counted from 1 in the table's order.
    """
    needed = ["model_a", "model_b", "winner"] + (["words_a", "words_b"] if need_lengths else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UserError(f"the battles table lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    frame = frame.reset_index(drop=True)
    for column in ("model_a", "model_b"):
        bad = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if bad.any():
            raise UserError(f"row {int(np.argmax(bad.to_numpy())) + 1}: {column} is empty")
    winner = frame["winner"].astype(str)
    bad = ~winner.isin(WINNERS)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise UserError(f"row {row + 1}: unknown winner label {frame['winner'].iloc[row]!r}: expected one of {', '.join(WINNERS)}")
    out = frame.copy()
    out["model_a"] = frame["model_a"].astype(str)
    out["model_b"] = frame["model_b"].astype(str)
    out["winner"] = winner
    same = (out["model_a"] == out["model_b"]).to_numpy()
    if same.any():
        row = int(np.argmax(same))
        raise UserError(f"row {row + 1}: a model cannot battle itself ({out['model_a'].iloc[row]!r})")
    if need_lengths:
        for column in ("words_a", "words_b"):
            out[column] = non_negative_column(frame, column)
    return out


def non_negative_column(frame, column: str):
    """``frame[column]`` as floats; UserError naming the first row (from 1) that is not a number >= 0."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values < 0)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise UserError(f"row {row + 1}: {column} must be a non-negative number, got {frame[column].iloc[row]!r}")
    return values.astype(float)


@dataclass
class CountTable:
    """Identical battles collapsed into counts, one row per pair of models (and covariate value).

    Row k holds the battles between ``models[a[k]]`` and ``models[b[k]]`` (always ``a < b``, the
    battle flipped if needed: a's win stays a's win, and the covariates change sign) with
    covariates ``covariate[k]`` (shape rows x K; K is 0 without length or style control).
    ``counts[k]`` holds how many of them
    ``a`` won, ``b`` won, and were ties (columns OUTCOME_A, OUTCOME_B, OUTCOME_TIE); ``both_bad``
    is a tie unless dropped. Which side a model was shown on does not enter the fit.
    """

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    covariate: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def with_counts(self, counts: np.ndarray) -> "CountTable":
        return CountTable(self.models, self.a, self.b, self.covariate, counts)


def length_covariate(words_a, words_b) -> np.ndarray:
    """The length-control covariate: (words_a - words_b) / (words_a + words_b), in [-1, 1] (0 if both are 0).

    A relative difference, so that 1,000 vs 1,100 words weighs like 10,000 vs 11,000.
    """
    wa, wb = np.asarray(words_a, dtype=float), np.asarray(words_b, dtype=float)
    total = wa + wb
    return np.where(total > 0, (wa - wb) / np.where(total > 0, total, 1.0), 0.0)


def model_codes(frame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer codes of ``model_a`` and ``model_b`` into the sorted list of model names."""
    import pandas as pd

    codes_a, names_a = pd.factorize(frame["model_a"], sort=False)
    codes_b, names_b = pd.factorize(frame["model_b"], sort=False)
    models = sorted(set(map(str, names_a)) | set(map(str, names_b)))
    position = {name: i for i, name in enumerate(models)}
    map_a = np.array([position[str(x)] for x in names_a], dtype=np.int64)
    map_b = np.array([position[str(x)] for x in names_b], dtype=np.int64)
    return map_a[codes_a], map_b[codes_b], models


def outcomes(frame) -> np.ndarray:
    """OUTCOME_A / OUTCOME_B / OUTCOME_TIE per row of a validated table (``both_bad`` is a tie)."""
    winner = frame["winner"].to_numpy()
    outcome = np.full(len(winner), OUTCOME_TIE, dtype=np.int64)
    outcome[winner == "model_a"] = OUTCOME_A
    outcome[winner == "model_b"] = OUTCOME_B
    return outcome


def collapse(frame, *, length_control: bool = False, covariates=None, both_bad: str = "tie") -> CountTable:
    """Collapse a validated battles table into a :class:`CountTable`.

    ``covariates`` (rows x K, one row per battle of ``frame``, a's side minus b's side) are the
    style-control columns; ``length_control`` uses the one length covariate instead. Each is
    rounded to 0.01 so that similar battles collapse into one row (a 1% difference is far below
    what annotators notice). ``both_bad`` is ``"tie"`` (count it as a tie) or ``"drop"``.
    """
    import pandas as pd

    if both_bad not in ("tie", "drop"):
        raise UserError(f"both_bad must be 'tie' or 'drop', got {both_bad!r}")
    if length_control:
        covariates = length_covariate(frame["words_a"], frame["words_b"])[:, None]
    z = np.zeros((len(frame), 0)) if covariates is None else np.asarray(covariates, dtype=float)
    z = z.reshape(len(frame), -1) if len(frame) else z.reshape(0, z.shape[-1] if z.ndim > 1 else 0)  # no votes yet
    if both_bad == "drop":
        keep = (frame["winner"] != "both_bad").to_numpy()
        frame, z = frame[keep], z[keep]
    a, b, models = model_codes(frame)
    outcome = outcomes(frame)
    flip = a > b
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    outcome = np.where(flip & (outcome != OUTCOME_TIE), 1 - outcome, outcome)
    m = max(len(models), 1)
    pair = a * m + b
    k = z.shape[1]
    if k:
        z = np.round(np.where(flip[:, None], -z, z), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
        keys = pd.DataFrame({"k": pair, **{f"z{j}": z[:, j] for j in range(k)}, "o": outcome})
        grouped = keys.groupby(list(keys.columns), sort=True).size()
        table = grouped.unstack("o", fill_value=0).reindex(columns=[0, 1, 2], fill_value=0)
        key = table.index.get_level_values(0).to_numpy(dtype=np.int64)
        cov = np.stack([table.index.get_level_values(j + 1).to_numpy(dtype=float) for j in range(k)], axis=1)
        counts = table.to_numpy(dtype=np.int64)
    else:
        cells = np.bincount(pair * 3 + outcome, minlength=m * m * 3).reshape(m * m, 3)
        key = np.nonzero(cells.sum(axis=1))[0]
        counts = cells[key]
        cov = np.zeros((len(key), 0))
    return CountTable(models=list(models), a=key // m, b=key % m, covariate=cov, counts=counts.astype(np.int64))


def components(table: CountTable) -> list[list[int]]:
    """Connected parts of the comparison graph (models joined when they met), largest first."""
    parent = list(range(len(table.models)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(table.a.tolist(), table.b.tolist()):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    parts: dict[int, list[int]] = {}
    for index in range(len(parent)):
        parts.setdefault(root(index), []).append(index)
    return sorted(parts.values(), key=lambda p: (-len(p), p[0]))


def subset(table: CountTable, members: list[int]) -> CountTable:
    """The battles among ``members`` only, with models re-indexed in the (sorted) order given."""
    members = sorted(members)
    remap = np.full(len(table.models), -1, dtype=np.int64)
    remap[np.asarray(members, dtype=np.int64)] = np.arange(len(members))
    keep = (remap[table.a] >= 0) & (remap[table.b] >= 0)
    return CountTable(
        models=[table.models[i] for i in members],
        a=remap[table.a[keep]],
        b=remap[table.b[keep]],
        covariate=table.covariate[keep],
        counts=table.counts[keep],
    )


def record(table: CountTable) -> dict[str, np.ndarray]:
    """Per model: battles, wins, losses and ties (counts, ``both_bad`` included in ties)."""
    m = len(table.models)
    won_a, won_b, tied = (table.counts[:, k].astype(float) for k in (OUTCOME_A, OUTCOME_B, OUTCOME_TIE))
    wins = np.bincount(table.a, weights=won_a, minlength=m) + np.bincount(table.b, weights=won_b, minlength=m)
    losses = np.bincount(table.a, weights=won_b, minlength=m) + np.bincount(table.b, weights=won_a, minlength=m)
    ties = np.bincount(table.a, weights=tied, minlength=m) + np.bincount(table.b, weights=tied, minlength=m)
    return {
        "n": (wins + losses + ties).astype(np.int64),
        "wins": wins.astype(np.int64),
        "losses": losses.astype(np.int64),
        "ties": ties.astype(np.int64),
    }
