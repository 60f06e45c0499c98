"""Matplotlib figures of a leaderboard: ratings with interval bars, a win-rate heatmap, votes over time.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot), so nothing is kept in a global
registry: a web app can build them per request and let them be garbage-collected.
"""

from __future__ import annotations

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def ratings_figure(result, *, title: str = "Ratings with 95% intervals"):
    """Horizontal points with interval bars, best at the top; unreliable intervals drawn grey and dashed.

    Models without a rating (fewer than ``min_battles`` battles) are left out, and a note under
    the plot names them with the votes they still need.
    """
    table = result.table
    rated = table[table["needs"] == 0]
    waiting = table[(table["needs"] > 0) & (table["n"] > 0)]
    fig = _figure(7.0, max(2.0, 0.45 * len(rated) + 1.2 + (0.3 if len(waiting) else 0.0)))
    ax = fig.add_subplot()
    if len(waiting):
        names = ", ".join(f"{m} ({n} more)" for m, n in zip(waiting["model"], waiting["needs"]))
        ax.set_xlabel(f"rating (Elo points)\nnot shown, too few votes: {names}")
    if rated.empty:
        ax.text(0.5, 0.5, "no votes yet" if waiting.empty else "no model has enough votes yet",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        ax.set_xticks([])
        return fig
    y = np.arange(len(rated))[::-1]
    for yi, (_, row) in zip(y, rated.iterrows()):
        reliable = bool(row["reliable"])
        color = "tab:blue" if reliable else "0.55"
        low, high = row["ci_low"], row["ci_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [yi, yi], color=color, linewidth=2, linestyle="-" if reliable else "--")
        ax.plot([row["rating"]], [yi], "o", color=color)
    ax.set_yticks(y, [f"{m}" + ("" if r else " (unreliable)") for m, r in zip(rated["model"], rated["reliable"])])
    ax.axvline(result.anchor_rating, color="0.85", linewidth=1, zorder=0)
    if waiting.empty:
        ax.set_xlabel("rating (Elo points)")
    ax.set_title(title)
    return fig


def heatmap_figure(matrix, *, title: str):
    """A models x models heatmap of probabilities (row beats column), cells labelled; blank where unknown."""
    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot()
    if matrix.empty:
        ax.text(0.5, 0.5, "no votes yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=0.0, vmax=1.0)
    names = list(matrix.index)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    if len(names) <= 15:
        for i in range(len(names)):
            for j in range(len(names)):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if abs(values[i, j] - 0.5) > 0.3 else "black")
    ax.set_xlabel("column model")
    ax.set_ylabel("row model")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="P(row beats column), a tie = 1/2")
    return fig


def votes_over_time_figure(frame, *, title: str = "Votes over time"):
    """Votes per day (bars) and the running total (line) from a votes table's ``created_at``."""
    import pandas as pd

    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot()
    if frame is None or frame.empty:
        ax.text(0.5, 0.5, "no votes yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    days = pd.to_datetime(frame["created_at"], utc=True).dt.floor("D")
    per_day = days.value_counts().sort_index()
    ax.bar(per_day.index, per_day.to_numpy(), width=0.8, color="tab:blue", label="votes per day")
    ax.set_ylabel("votes per day")
    twin = ax.twinx()
    twin.plot(per_day.index, per_day.cumsum().to_numpy(), color="tab:orange", marker="o", label="total")
    twin.set_ylabel("total votes")
    ax.set_title(title)
    fig.autofmt_xdate()
    return fig
