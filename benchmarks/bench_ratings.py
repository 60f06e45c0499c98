"""Benchmark: Bradley–Terry with 100-sample bootstrap over 1,000,000 battles among 50 models.

Compares ``evaluation.ratings.compute_ratings`` (distinct rows collapsed into counts, bootstrap by
multinomial reweighting of the count vector) with a straightforward implementation that fits on
the raw rows (L-BFGS over one term per battle) and bootstraps by resampling raw rows, in the same
run, on the same battles. Both minimise the same objective (mean-zero strengths, same tiny ridge).

    .venv/bin/python benchmarks/bench_ratings.py [--battles 1000000] [--models 50] [--bootstrap 100] [--repeat 3]

The fast version is timed from the in-memory battles DataFrame (validation, collapsing, the fit,
the bootstrap, the sandwich intervals and the table) to the finished leaderboard. Wall-clock and
CPU (process) seconds are both printed, with the load average: on a shared machine the wall
clock mostly measures the other processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_battles(*, battles: int, models: int, seed: int):
    """Battles among ``models`` with known strengths (ties 10%, both_bad 5%), seeded."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, size=models)
    a = rng.integers(0, models, size=battles)
    b = (a + rng.integers(1, models, size=battles)) % models
    p = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(battles)
    decisive = 0.85
    winner = np.where(u < decisive * p, "model_a", np.where(u < decisive, "model_b", np.where(u < 0.95, "tie", "both_bad")))
    names = np.array([f"model-{i:02d}" for i in range(models)], dtype=object)
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner}), strength


def naive_fit(a, b, y, m, start=None):
    """Fit on raw rows: minimise sum_i -[y log s + (1-y) log(1-s)] + ridge/2 |theta|^2 with L-BFGS."""
    from scipy.optimize import minimize

    from evaluation.bt import RIDGE

    def objective(theta):
        delta = theta[a] - theta[b]
        loss = np.sum(y * np.logaddexp(0.0, -delta) + (1.0 - y) * np.logaddexp(0.0, delta))
        r = y - 1.0 / (1.0 + np.exp(-delta))
        grad = -np.bincount(a, weights=r, minlength=m) + np.bincount(b, weights=r, minlength=m)
        return loss + 0.5 * RIDGE * theta @ theta, grad + RIDGE * theta

    x0 = np.zeros(m) if start is None else start
    return minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-15}).x


def naive_ratings(frame, *, bootstrap: int, seed: int):
    """Raw-row fit plus bootstrap over raw rows; Elo points with mean 1000, 95% percentile intervals."""
    import pandas as pd

    codes, names = pd.factorize(pd.concat([frame["model_a"], frame["model_b"]], ignore_index=True), sort=True)
    n, m = len(frame), len(names)
    a, b = codes[:n], codes[n:]
    w = frame["winner"].to_numpy()
    y = np.where(w == "model_a", 1.0, np.where(w == "model_b", 0.0, 0.5))
    to_points = lambda t: 400.0 / math.log(10.0) * (t - t.mean(axis=-1, keepdims=True)) + 1000.0
    theta = naive_fit(a, b, y, m)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, m))
    for i in range(bootstrap):
        pick = rng.integers(0, n, size=n)
        samples[i] = naive_fit(a[pick], b[pick], y[pick], m, start=theta)
    points = to_points(samples)
    return list(names), to_points(theta), np.percentile(points, 2.5, axis=0), np.percentile(points, 97.5, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time the fast version this many times (median reported)")
    parser.add_argument("--naive-bootstrap", type=int, default=None, help="bootstrap samples for the raw-row version (default: same)")
    parser.add_argument("--out", metavar="FILE", help="also write the result as JSON to FILE (e.g. benchmarks/results/ratings.json)")
    args = parser.parse_args()

    from evaluation.ratings import compute_ratings

    load_before = round(os.getloadavg()[0], 2)

    frame, _ = synthetic_battles(battles=args.battles, models=args.models, seed=args.seed)
    fast_times, fast_cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fast = compute_ratings(frame, bootstrap=args.bootstrap, seed=args.seed)
        fast_times.append(time.perf_counter() - t0)
        fast_cpu.append(time.process_time() - c0)
    fast_s = float(np.median(fast_times))
    nb = args.naive_bootstrap if args.naive_bootstrap is not None else args.bootstrap
    t0, c0 = time.perf_counter(), time.process_time()
    names, rating, low, high = naive_ratings(frame, bootstrap=nb, seed=args.seed)
    naive_s = time.perf_counter() - t0
    naive_cpu = time.process_time() - c0
    fast_by = fast.table.set_index("model")
    diff = np.array([abs(fast_by.loc[n, "rating"] - r) for n, r in zip(names, rating)])
    low_diff = np.array([abs(fast_by.loc[n, "ci_low"] - v) for n, v in zip(names, low)])
    high_diff = np.array([abs(fast_by.loc[n, "ci_high"] - v) for n, v in zip(names, high)])
    width_fast = float(np.mean(fast_by["ci_high"] - fast_by["ci_low"]))
    width_naive = float(np.mean(high - low))
    result = {
        "command": " ".join(["benchmarks/bench_ratings.py", *sys.argv[1:]]),
        "load_average_1min_before": load_before,
        "battles": args.battles, "models": args.models, "bootstrap": args.bootstrap, "naive_bootstrap": nb,
        "distinct_rows": int(fast.counts.counts.size),
        "fast_s": round(fast_s, 3), "fast_runs_s": [round(t, 3) for t in fast_times],
        "fast_cpu_s": round(float(np.median(fast_cpu)), 3), "naive_s": round(naive_s, 3), "naive_cpu_s": round(naive_cpu, 3),
        "speedup_wall": round(naive_s / fast_s, 1), "speedup_cpu": round(naive_cpu / float(np.median(fast_cpu)), 1),
        "max_rating_diff_elo": round(float(diff.max()), 4),
        "max_ci_bound_diff_elo": round(float(max(low_diff.max(), high_diff.max())), 3),
        "mean_ci_width_fast": round(width_fast, 3), "mean_ci_width_naive": round(width_naive, 3),
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
