"""The Leaderboard tab: ratings table, interval plot, win-rate heatmap, votes over time, with filters.

Everything is recomputed from the database on each Refresh (or filter change), so new votes
show without a restart. ``leaderboard_view`` is the plain function behind the tab.

No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation at run time.
"""

from typing import Any

from sqlalchemy.engine import Engine

from core.errors import UserError
from webapp.rendering import safe_markdown

ALL = "All categories"
TABLE_COLUMNS = ["rank", "model", "rating", "ci_low", "ci_high", "n", "wins", "losses", "ties", "reliable"]
STYLE_COLUMNS = ["rating_uncontrolled", "rank_uncontrolled", "rank_change"]
RUBRIC_COLUMNS = ["model", "judge", "requests", "scores", "invalid", "mean", "ci_low", "ci_high"]
AGREEMENT_COLUMNS = ["model", "pair", "battles", "agreement", "ci_low", "ci_high"]


def leaderboard_view(
    engine: Engine,
    *,
    category: str | None = None,
    length_control: bool = False,
    style_control: bool = False,
    include_flagged: bool = False,
    heatmap: str = "observed",
    bootstrap: int = 100,
    seed: int = 0,
    min_battles: int = 20,
) -> dict[str, Any]:
    """The tab's content: ``table`` (DataFrame), ``summary`` (markdown), ``ratings``, ``heatmap``
    and ``votes`` (matplotlib figures), ``categories`` (choices for the filter).

    A model with fewer than ``min_battles`` battles shows "needs N more votes" in place of a rating.
    With ``style_control`` the table also shows the rating and rank without control and the rank change.
    """
    import pandas as pd

    from evaluation.leaderboard import categories, leaderboard_from_db
    from evaluation.crosscheck import agreement_from_db
    from evaluation.rubric import rubric_table
    from evaluation.plots import heatmap_figure, ratings_figure, votes_over_time_figure
    from evaluation.ratings import predicted_matrix, win_rate_matrix

    result, frame = leaderboard_from_db(
        engine, category=None if category in (None, "", ALL) else category,
        length_control=length_control and not style_control, style_control=style_control,
        include_flagged=include_flagged, bootstrap=bootstrap, seed=seed, min_battles=min_battles,
    )
    table = rating_table(result)
    lines = [
        f"**{len(frame):,} votes** · Bradley–Terry, ties count half · 95% bootstrap intervals "
        f"({bootstrap} samples, seed {seed}) · rank = 1 + models whose interval is wholly above"
    ]
    if result.length_coef is not None:
        lines.append(f"Length control: {result.length_coef:+.0f} points for a fully longer answer "
                     "(covariate (a−b)/(a+b)); ratings are at equal length.")
    if result.style_coefs:
        coefs = ", ".join(f"{name} {value:+.0f}" for name, value in result.style_coefs.items())
        lines.append(f"Style control (points per s.d. of (a−b)/(a+b)): {coefs}; ratings are at equal style, "
                     "shown beside the uncontrolled rating and rank.")
    elif result.style_control:
        lines.append("Style control: no style feature differs between the answers, so nothing is controlled.")
    lines += [f"⚠ {safe_markdown(w)}" for w in result.warnings]  # they name models: stored text
    if heatmap == "predicted":
        matrix, title = predicted_matrix(result), "Predicted P(row beats column)"
    else:
        matrix, title = win_rate_matrix(result), "Observed win rate (row vs column)"
    return {
        "table": table,
        "summary": "\n\n".join(lines),
        "result": result,
        "ratings": ratings_figure(result),
        "heatmap": heatmap_figure(matrix, title=title),
        "votes": votes_over_time_figure(frame),
        "categories": [ALL] + categories(engine),
        "rubric": pd.DataFrame(rubric_table(engine, seed=seed), columns=RUBRIC_COLUMNS),
        "agreement": pd.DataFrame(agreement_from_db(engine), columns=AGREEMENT_COLUMNS),
    }


def rating_table(result):
    """The ratings as the tab shows them: numbers rounded, "needs N more votes" for unrated models."""
    columns = TABLE_COLUMNS + (STYLE_COLUMNS if result.style_control else [])
    table = result.table[columns].copy()
    for column in ("rating", "ci_low", "ci_high") + (("rating_uncontrolled",) if result.style_control else ()):
        table[column] = table[column].round(1)
    needs = result.table["needs"]
    table["rating"] = [
        f"needs {k} more vote{'s' if k != 1 else ''}" if k > 0 else f"{r:.1f}" for k, r in zip(needs, table["rating"])
    ]
    table["reliable"] = table["reliable"].map({True: "yes", False: "no"})
    return table


def build_leaderboard_tab(gr, ctx) -> dict:
    """Add the Leaderboard tab's components to the open Blocks context (action "leaderboard")."""
    with gr.Row():
        category = gr.Dropdown([ALL], value=ALL, label="Category", allow_custom_value=False, scale=2)
        length_control = gr.Checkbox(False, label="Length control (rate at equal answer length)")
        style_control = gr.Checkbox(False, label="Style control (length, markdown, repetition)",
                                    elem_id="lwz-leaderboard-style")
        include_flagged = gr.Checkbox(False, label="Include flagged votes")
        heatmap_kind = gr.Radio(["observed", "predicted"], value="observed", label="Heatmap")
        refresh = gr.Button("Refresh", variant="primary", scale=0, elem_id="lwz-leaderboard-refresh")
    summary = gr.Markdown("Press Refresh to compute the leaderboard.", elem_id="lwz-leaderboard-summary")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="lwz-leaderboard-table")
    ratings_plot = gr.Plot(label="Ratings", elem_id="lwz-leaderboard-ratings-plot")
    rubric = gr.Dataframe(interactive=False, wrap=True, elem_id="lwz-leaderboard-rubric",
                          label="Rubric scores (WritingBench style, 1–10 per criterion; lwz eval rubric)")
    agreement = gr.Dataframe(interactive=False, wrap=True, elem_id="lwz-leaderboard-agreement",
                             label="Agreement per model: humans, judges, reward models (decisive battles; "
                                   "lwz eval agreement)")
    with gr.Row():
        heatmap_plot = gr.Plot(label="Win rates")
        votes_plot = gr.Plot(label="Votes over time")

    def show(chosen: str, lc: bool, sc: bool, flagged: bool, kind: str, request: gr.Request):
        try:
            ctx.require(request, "leaderboard")
            view = leaderboard_view(ctx.engine, category=chosen, length_control=lc, style_control=sc,
                                    include_flagged=flagged, heatmap=kind)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        choices = view["categories"]
        return (
            gr.Dropdown(choices=choices, value=chosen if chosen in choices else ALL),
            view["summary"], view["table"], view["ratings"], view["heatmap"], view["votes"], view["rubric"],
            view["agreement"],
        )

    inputs = [category, length_control, style_control, include_flagged, heatmap_kind]
    outputs = [category, summary, table, ratings_plot, heatmap_plot, votes_plot, rubric, agreement]
    refresh.click(show, inputs, outputs, concurrency_limit=4, api_name=False)
    for control in (category, length_control, style_control, include_flagged, heatmap_kind):
        control.input(show, inputs, outputs, concurrency_limit=4, api_name=False)
    return {"refresh": refresh, "table": table}
